"""The network as one graph with the vocabulary as an input (ONNX export)."""
import warnings
from typing import Tuple

import torch
from mmdet.structures import DetDataSample
from torch import Tensor, nn

INPUT_NAMES = ('inputs', 'text_embeds', 'img_shape')
OUTPUT_NAMES = ('cls_scores', 'boxes', 'masks')


class MQFormerExportModel(nn.Module):
    """Backbone -> encoder -> mixed-query decoder -> head, fed tensors only.

    The text encoder stays outside: the graph takes the *projected* text
    embeddings (``model.text_proj(text_encoder(texts))``, see
    :func:`mqformer.deploy.encode_vocabulary`), so one exported file serves
    any vocabulary. The image's valid size is an input too: the padding
    mask, valid ratios and mask-enhanced anchors are built from it with
    tensor ops, so a letterboxed image follows the same geometry as in
    PyTorch.

    Inputs: ``inputs`` (1, 3, H, W) normalised and padded as by the model's
    data preprocessor; ``text_embeds`` (1, T, C); ``img_shape`` (2, ) int64,
    the valid (h, w) inside (H, W).
    Outputs: ``cls_scores`` (1, N, T) logits, ``boxes`` (1, N, 4) cxcywh
    normalised to the valid area, ``masks`` (1, N, H/4, W/4) logits: the
    last decoder layer's matching queries, laid out
    [conditional | learnable], as :class:`MQFusionHead` takes them.

    Args:
        model (MQFormer): in eval mode.
        input_shape (tuple): (H, W) of the padded input the graph is traced
            at.
    """

    def __init__(self, model: nn.Module, input_shape: Tuple[int, int]):
        super().__init__()
        self.model = model
        self.input_shape = tuple(int(x) for x in input_shape)
        # only batch_input_shape is read from a sample inside the graph
        self.meta = DetDataSample(metainfo=dict(
            batch_input_shape=self.input_shape, img_shape=self.input_shape))

    def forward(self, inputs: Tensor, text_embeds: Tensor,
                img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        model = self.model
        img_shapes = img_shape.view(1, 2)
        text_mask = text_embeds.new_ones(text_embeds.shape[:2],
                                         dtype=torch.bool)
        enc = model.forward_encoder(
            model.extract_feat(inputs),
            model.padding_mask_of(img_shapes, self.input_shape))
        decoder_inputs, head_inputs = model.pre_decoder(
            **enc, text_embeds=text_embeds, text_mask=text_mask,
            batch_data_samples=[self.meta], img_shapes=img_shapes)
        out = model.forward_decoder(**enc, **decoder_inputs)
        cls_scores, boxes, masks = model.bbox_head.predict(
            out['hidden_states'], out['references'], enc['mask_features'],
            text_embeds)
        return cls_scores, boxes, masks


# Why image sizes are fixed in the graph: mmdet's deformable-attention layers
# turn spatial shapes into Python numbers (``value.split([H * W ...])``,
# ``torch.linspace(0, H - 1, H)``), which the TorchScript tracer records as
# constants and ``torch.export`` (dynamo) refuses as data-dependent.
FIXED_SIZE_REASON = (
    'dynamic image sizes do not export: mmdet\'s deformable-attention layers '
    'turn the feature maps\' spatial shapes into Python numbers '
    '(value.split([H * W, ...]), torch.linspace(0, H - 1, H)), which the '
    'TorchScript tracer fixes as constants and torch.export refuses as '
    'data-dependent. Export at a fixed --shape instead: any image is '
    'letterboxed into it and its valid size is a graph input. The '
    'vocabulary size T is always dynamic.')
METADATA_KEY = 'mqformer'
DEFAULT_OPSET = 17


def export_metadata(model: nn.Module, input_shape: Tuple[int, int]) -> dict:
    """What a runner needs besides the graph: preprocessing, post-processing
    settings and the query layout (stored in the ONNX file's metadata)."""
    pre = model.data_preprocessor
    normalize = getattr(pre, '_enable_normalize', False)
    return dict(
        input_shape=list(input_shape),
        mean=pre.mean.flatten().tolist() if normalize else None,
        std=pre.std.flatten().tolist() if normalize else None,
        bgr_to_rgb=bool(getattr(pre, '_channel_conversion', False)),
        pad_value=float(getattr(pre, 'pad_value', 0)),
        embed_dims=int(model.embed_dims),
        query_mode=model.query_mode,
        num_conditional_queries=int(model.num_conditional),
        num_learnable_queries=int(model.num_learnable),
        test_cfg=dict(model.fusion_head.test_cfg),
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES))


def export_onnx(model: nn.Module, out_file: str,
                input_shape: Tuple[int, int] = (512, 512),
                opset: int = DEFAULT_OPSET,
                num_texts: int = 4) -> dict:
    """Export ``model`` (an :class:`MQFormer`) to ``out_file``.

    The graph is traced at ``input_shape`` (H, W), multiples of the
    backbone's largest stride, with ``num_texts`` random text embeddings;
    the text axis is dynamic. Returns the metadata written into the file.
    """
    import json

    import onnx
    H, W = input_shape
    if H % 32 or W % 32:
        raise ValueError(f'--shape {H} {W}: both sides must be multiples of '
                         '32 (the backbone stride and pad_size_divisor)')
    model = model.eval()
    wrapper = MQFormerExportModel(model, (H, W)).eval()
    device = next(model.parameters()).device
    args = (torch.zeros(1, 3, H, W, device=device),
            torch.randn(1, num_texts, model.embed_dims, device=device),
            torch.tensor([H, W], dtype=torch.long, device=device))
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on Python numbers are the fixed sizes above
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(
            wrapper, args, out_file,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dict(text_embeds={1: 'num_texts'},
                              cls_scores={2: 'num_texts'}),
            opset_version=opset,
            dynamo=False)
    meta = export_metadata(model, (H, W))
    meta['opset'] = opset
    proto = onnx.load(out_file)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, out_file)
    return meta

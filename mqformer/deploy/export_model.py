"""The network as one graph with the vocabulary as an input (ONNX export)."""
import warnings
from typing import Optional, Tuple

import torch
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from ..apis.inferencer import test_scale_of

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
        input_shape (tuple, optional): (H, W) of the padded input the graph
            is traced at; ``None``: read from ``inputs`` (a graph for every
            image size, :func:`export_onnx` ``dynamic=True``).
    """

    def __init__(self, model: nn.Module,
                 input_shape: Optional[Tuple[int, int]] = None):
        super().__init__()
        self.model = model
        self.input_shape = None if input_shape is None else tuple(
            int(x) for x in input_shape)

    def forward(self, inputs: Tensor, text_embeds: Tensor,
                img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        model = self.model
        # (symbolic sizes while tracing a dynamic graph)
        input_shape = self.input_shape or tuple(inputs.shape[-2:])
        # only batch_input_shape is read from a sample inside the graph
        meta = DetDataSample(metainfo=dict(batch_input_shape=input_shape,
                                           img_shape=input_shape))
        img_shapes = img_shape.view(1, 2)
        text_mask = text_embeds.new_ones(text_embeds.shape[:2],
                                         dtype=torch.bool)
        enc = model.forward_encoder(
            model.extract_feat(inputs),
            model.padding_mask_of(img_shapes, input_shape))
        decoder_inputs, head_inputs = model.pre_decoder(
            **enc, text_embeds=text_embeds, text_mask=text_mask,
            batch_data_samples=[meta], img_shapes=img_shapes,
            batch_input_shape=input_shape)
        out = model.forward_decoder(**enc, **decoder_inputs)
        cls_scores, boxes, masks = model.bbox_head.predict(
            out['hidden_states'], out['references'], enc['mask_features'],
            text_embeds)
        return cls_scores, boxes, masks


METADATA_KEY = 'mqformer'
DEFAULT_OPSET = 17


def export_metadata(model: nn.Module, input_shape: Optional[Tuple[int, int]],
                    test_scale: Optional[Tuple[int, int]] = None) -> dict:
    """What a runner needs besides the graph: preprocessing, post-processing
    settings and the query layout (stored in the ONNX file's metadata).
    ``input_shape`` ``None``: a graph for every size, whose runner resizes
    as the test pipeline does (``test_scale`` (w, h), keeping the aspect
    ratio) and pads to ``pad_size_divisor``."""
    pre = model.data_preprocessor
    normalize = getattr(pre, '_enable_normalize', False)
    return dict(
        input_shape=None if input_shape is None else list(input_shape),
        dynamic=input_shape is None,
        test_scale=None if test_scale is None else list(test_scale),
        pad_size_divisor=int(getattr(pre, 'pad_size_divisor', 1)),
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
                num_texts: int = 4, dynamic: bool = False,
                test_scale: Optional[Tuple[int, int]] = None) -> dict:
    """Export ``model`` (an :class:`MQFormer`) to ``out_file``.

    The graph is traced at ``input_shape`` (H, W), multiples of the
    backbone's largest stride, with ``num_texts`` random text embeddings;
    the text axis is dynamic. With ``dynamic`` the image's height and width
    (and the number of conditional queries, which follows the image's valid
    proposals as in PyTorch) are dynamic too: one file for every image size,
    run with the test pipeline's resize (``test_scale`` (w, h), default:
    the model config's). Returns the metadata written into the file.
    """
    import json

    import onnx
    H, W = input_shape
    if H % 32 or W % 32:
        raise ValueError(f'--shape {H} {W}: both sides must be multiples of '
                         '32 (the backbone stride and pad_size_divisor)')
    if dynamic:
        test_scale = test_scale or test_scale_of(getattr(model, 'cfg', None))
        if test_scale is None:
            raise ValueError('dynamic export: the model config has no test '
                             'pipeline Resize; give test_scale (w, h)')
    model = model.eval()
    wrapper = MQFormerExportModel(model, None if dynamic else (H, W)).eval()
    device = next(model.parameters()).device
    # traced with padding on both sides, so the padding geometry is traced
    args = (torch.zeros(1, 3, H, W, device=device),
            torch.randn(1, num_texts, model.embed_dims, device=device),
            torch.tensor([H - 32 if dynamic else H, W - 32 if dynamic else W],
                         dtype=torch.long, device=device))
    axes = dict(text_embeds={1: 'num_texts'}, cls_scores={2: 'num_texts'})
    if dynamic:
        axes.update(inputs={2: 'height', 3: 'width'},
                    cls_scores={1: 'num_queries', 2: 'num_texts'},
                    boxes={1: 'num_queries'},
                    masks={1: 'num_queries', 2: 'mask_height',
                           3: 'mask_width'})
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on Python numbers: sizes fixed in a fixed-size
        # graph; a dynamic one keeps them symbolic (level_geometry)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(
            wrapper, args, out_file,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False)
    meta = export_metadata(model, None if dynamic else (H, W), test_scale)
    meta['opset'] = opset
    proto = onnx.load(out_file)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, out_file)
    return meta

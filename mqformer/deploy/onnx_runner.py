"""Run an exported MQ-Former with onnxruntime, for every task."""
import json
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmdet.structures import DetDataSample

from ..apis.inferencer import read_image, task_switches
from ..models.heads.mq_fusion_head import MQFusionHead
from .export_model import METADATA_KEY
from .vocabulary import Vocabulary


class ONNXRunner:
    """An exported model file + a :class:`Vocabulary` -> data samples with
    the same predictions as :class:`MQFormerInferencer`.

    Preprocessing (letterbox into the exported shape, ``bgr_to_rgb``,
    normalisation, zero padding) and the settings of the post-processing
    (:class:`MQFusionHead`) come from the metadata written at export.

    Example::

        runner = ONNXRunner('model.onnx')
        vocab = Vocabulary.load('vocab.npz')
        sample = runner.predict('img.jpg', vocab, task='panoptic',
                                stuff_texts=['sky'])

    Args:
        onnx_file (str): from ``tools/deployment/export_onnx.py``.
        providers (list[str]): onnxruntime execution providers.
        num_threads (int): intra-op threads; 0 lets onnxruntime choose.
    """

    def __init__(self, onnx_file: str,
                 providers: Sequence[str] = ('CPUExecutionProvider', ),
                 num_threads: int = 0) -> None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(onnx_file, opts,
                                            providers=list(providers))
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ValueError(f'{onnx_file}: no "{METADATA_KEY}" metadata; '
                             'export it with tools/deployment/export_onnx.py')
        self.meta = json.loads(props[METADATA_KEY])
        # None: a graph for every size (export_onnx dynamic=True)
        self.input_shape = None if self.meta.get('dynamic') else tuple(
            self.meta['input_shape'])
        self.fusion_head = MQFusionHead(test_cfg=self.meta['test_cfg'])

    # ------------------------------------------------------------ steps
    def preprocess(self, img: np.ndarray) -> Tuple[np.ndarray, dict]:
        """BGR (h, w, 3) -> (1, 3, H, W) float32 input and the image meta
        (``img_shape``, ``ori_shape``, ``scale_factor``,
        ``batch_input_shape``): the image is resized to fit the exported
        (H, W) keeping its aspect ratio and padded at the bottom/right, as
        mmdet's ``Resize(keep_ratio=True)`` + data preprocessor do. A
        dynamic graph takes the test pipeline's resize (``test_scale``) and
        pads to ``pad_size_divisor``, exactly as in PyTorch."""
        h, w = img.shape[:2]
        if self.input_shape is None:
            resized = mmcv.imrescale(img, tuple(self.meta['test_scale']),
                                     interpolation='bilinear')
            div = self.meta.get('pad_size_divisor', 1) or 1
            H, W = (-(-x // div) * div for x in resized.shape[:2])
        else:
            H, W = self.input_shape
            resized = mmcv.imrescale(img, min(H / h, W / w),
                                     interpolation='bilinear')
        rh, rw = resized.shape[:2]
        x = resized.astype(np.float32)
        if self.meta['bgr_to_rgb']:
            x = x[..., ::-1]
        if self.meta['mean'] is not None:
            x = (x - np.float32(self.meta['mean'])) / np.float32(
                self.meta['std'])
        inputs = np.full((1, 3, H, W), self.meta['pad_value'], np.float32)
        inputs[0, :, :rh, :rw] = x.transpose(2, 0, 1)
        meta = dict(img_shape=(rh, rw), ori_shape=(h, w),
                    scale_factor=(rw / w, rh / h), batch_input_shape=(H, W))
        return inputs, meta

    def forward(self, inputs: np.ndarray, vocab: Vocabulary,
                img_shape: Tuple[int, int]) -> Tuple[np.ndarray, ...]:
        """The graph: class logits (1, N, T), boxes (1, N, 4), mask logits
        (1, N, H/4, W/4)."""
        if vocab.embeds.shape[1] != self.meta['embed_dims']:
            raise ValueError(
                f'vocabulary embeddings are {vocab.embeds.shape[1]}-d but the '
                f'model takes {self.meta["embed_dims"]}-d; encode the '
                'vocabulary with the exported model\'s config and weights')
        return tuple(self.session.run(None, dict(
            inputs=inputs,
            text_embeds=vocab.embeds[None].astype(np.float32),
            img_shape=np.asarray(img_shape, np.int64))))

    def predict(self, img: Union[str, np.ndarray], vocab: Vocabulary,
                task: str = 'panoptic',
                stuff_texts: Sequence[str] = ()) -> DetDataSample:
        """One image (path or BGR array) -> a data sample with ``task``'s
        predictions (fields as in :meth:`MQFusionHead.predict`)."""
        switches = task_switches(task)
        path = img if isinstance(img, str) else ''
        img = read_image(img) if path else img
        inputs, meta = self.preprocess(img)
        cls, boxes, masks = self.forward(inputs, vocab, meta['img_shape'])
        texts = list(vocab.texts)
        # the layout [conditional | learnable] of the graph's outputs (fewer
        # conditional queries than configured where the input has fewer
        # valid proposals)
        num_cond = cls.shape[1] - self.meta['num_learnable_queries']
        meta.update(img_path=path, texts=texts, text_type=vocab.text_type,
                    task=task, num_conditional_queries=num_cond,
                    text_is_thing=[t not in set(stuff_texts) for t in texts])
        sample = DetDataSample(metainfo=meta)
        head = self.fusion_head
        saved = dict(head.test_cfg)
        head.test_cfg.update(switches)
        try:
            out = head.predict(torch.from_numpy(cls[0]),
                               torch.from_numpy(boxes[0]),
                               torch.from_numpy(masks[0]), sample.metainfo)
        finally:
            head.test_cfg.clear()
            head.test_cfg.update(saved)
        inst = out.get('pred_instances')
        if inst is not None and 'query_index' in inst:
            inst.query_learnable = inst.query_index >= num_cond
        for key, value in out.items():
            setattr(sample, key, value)
        return sample

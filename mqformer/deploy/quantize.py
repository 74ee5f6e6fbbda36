"""Smaller exported files: int8 (onnxruntime's dynamic or static
quantization) and float16 weights."""
import json
import os
import os.path as osp
import tempfile
from typing import Iterator, List, Optional, Sequence

import numpy as np

from .export_model import METADATA_KEY
from .vocabulary import Vocabulary

QUANTIZE_MODES = ('int8', 'int8-static', 'fp16')
IMG_EXT = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def _copy_metadata(src: str, dst: str, **extra) -> dict:
    """Carry the ``mqformer`` metadata of ``src`` into ``dst`` (the
    quantizers drop it), with ``extra`` keys added."""
    import onnx
    meta = None
    for p in onnx.load(src, load_external_data=False).metadata_props:
        if p.key == METADATA_KEY:
            meta = json.loads(p.value)
    if meta is None:
        raise ValueError(f'{src}: no "{METADATA_KEY}" metadata; export it '
                         'with tools/deployment/export_onnx.py first')
    meta.update(extra)
    proto = onnx.load(dst)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, dst)
    return meta


class ImageCalibration:
    """onnxruntime's ``CalibrationDataReader`` over a folder of the user's
    images: each is preprocessed as :class:`ONNXRunner` does and paired with
    ``vocab``'s embeddings."""

    def __init__(self, fp32_file: str, images: Sequence[str],
                 vocab: Vocabulary) -> None:
        from .onnx_runner import ONNXRunner
        self.runner = ONNXRunner(fp32_file)
        self.images = list(images)
        self.vocab = vocab
        self._it = self._feeds()

    def _feeds(self) -> Iterator[dict]:
        from ..apis.inferencer import read_image
        for path in self.images:
            inputs, meta = self.runner.preprocess(read_image(path))
            yield dict(inputs=inputs,
                       text_embeds=self.vocab.embeds[None].astype(np.float32),
                       img_shape=np.asarray(meta['img_shape'], np.int64))

    def get_next(self) -> Optional[dict]:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._feeds()


def calibration_images(folder: str, num: int = 32) -> List[str]:
    """The first ``num`` images (sorted) of ``folder``; an error naming the
    folder if it has none."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'calibration folder not found: {folder}')
    files = sorted(
        osp.join(folder, f) for f in os.listdir(folder)
        if f.lower().endswith(IMG_EXT))
    if not files:
        raise ValueError(f'{folder}: no images (JPEG/PNG) to calibrate on')
    return files[:num]


def quantize_onnx(fp32_file: str, out_file: str, mode: str = 'int8',
                  calib_images: Sequence[str] = (),
                  vocab: Optional[Vocabulary] = None) -> dict:
    """Write a smaller copy of an exported float32 file.

    Args:
        fp32_file (str): from :func:`export_onnx`.
        out_file (str): the new file.
        mode (str): ``'int8'``: onnxruntime's dynamic quantization (int8
            weights of the MatMuls, activations quantized per call; no
            calibration); ``'int8-static'``: QDQ quantization of
            convolutions and MatMuls, per-channel weights, activation ranges
            calibrated on ``calib_images`` with ``vocab``; ``'fp16'``:
            float16 weights and compute, float32 inputs and outputs.

    Returns:
        dict: the file's metadata (``quantization`` added).
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f'quantization mode must be one of '
                         f'{QUANTIZE_MODES}, got {mode!r}')
    if mode == 'fp16':
        import onnx
        from onnxruntime.transformers.float16 import \
            convert_float_to_float16
        model = convert_float_to_float16(onnx.load(fp32_file),
                                         keep_io_types=True)
        onnx.save(model, out_file)
        return _copy_metadata(fp32_file, out_file, quantization=mode)
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                          QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory() as tmp:
        pre = osp.join(tmp, 'pre.onnx')
        # shape inference + graph optimisation, as onnxruntime recommends
        quant_pre_process(fp32_file, pre, skip_symbolic_shape=True)
        if mode == 'int8':
            quantize_dynamic(pre, out_file, weight_type=QuantType.QInt8,
                             op_types_to_quantize=['MatMul', 'Gemm'])
        else:
            if not calib_images or vocab is None:
                raise ValueError('int8-static needs calibration images '
                                 '(--calib-images DIR) and a vocabulary')
            quantize_static(
                pre, out_file,
                ImageCalibration(fp32_file, calib_images, vocab),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=['Conv', 'MatMul', 'Gemm'],
                calibrate_method=CalibrationMethod.MinMax)
    return _copy_metadata(fp32_file, out_file, quantization=mode)

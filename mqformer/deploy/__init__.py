"""Deployment: ONNX export with the vocabulary as an input, and a runner."""
from .export_model import (DEFAULT_OPSET,
                           MQFormerExportModel, export_onnx)
from .onnx_runner import ONNXRunner
from .quantize import QUANTIZE_MODES, calibration_images, quantize_onnx
from .vocabulary import Vocabulary, encode_vocabulary

__all__ = ['MQFormerExportModel', 'export_onnx', 'DEFAULT_OPSET',
           'ONNXRunner', 'Vocabulary', 'encode_vocabulary', 'quantize_onnx',
           'QUANTIZE_MODES', 'calibration_images']

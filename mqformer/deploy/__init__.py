"""Deployment: ONNX export with the vocabulary as an input, and a runner."""
from .export_model import (DEFAULT_OPSET, FIXED_SIZE_REASON,
                           MQFormerExportModel, export_onnx)
from .onnx_runner import ONNXRunner
from .vocabulary import Vocabulary, encode_vocabulary

__all__ = ['MQFormerExportModel', 'export_onnx', 'FIXED_SIZE_REASON', 'DEFAULT_OPSET',
           'ONNXRunner', 'Vocabulary', 'encode_vocabulary']

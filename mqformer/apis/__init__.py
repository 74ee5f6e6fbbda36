from .inferencer import MQFormerInferencer, encode_mask, read_image

__all__ = ['MQFormerInferencer', 'encode_mask', 'read_image']

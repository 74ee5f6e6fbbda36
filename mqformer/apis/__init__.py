from .checkpoint_fit import (CheckpointFitHook, check_checkpoint_fits,
                             load_fitting_weights)
from .inferencer import (MQFormerInferencer, check_texts, encode_mask,
                         init_model, predictions_to_json, read_image)

__all__ = [
    'MQFormerInferencer', 'init_model', 'predictions_to_json', 'encode_mask',
    'read_image', 'check_texts', 'check_checkpoint_fits', 'CheckpointFitHook',
    'load_fitting_weights'
]

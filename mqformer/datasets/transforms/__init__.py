from .loading import LoadPanopticSegments
from .text_labels import MQ_META_KEYS, ClassNamesToTexts, PackMQInputs

__all__ = ['ClassNamesToTexts', 'PackMQInputs', 'MQ_META_KEYS',
           'LoadPanopticSegments']

from .flip import RandomFlipPhrases, mirror_phrase
from .loading import LoadPanopticSegments
from .segments import LoadForegroundMask, PhrasesToTexts, SemanticToInstances
from .text_labels import (MQ_META_KEYS, ClassNamesToTexts, PackMQInputs,
                          SampleCaptions)

__all__ = ['ClassNamesToTexts', 'PackMQInputs', 'MQ_META_KEYS',
           'LoadPanopticSegments', 'SemanticToInstances', 'LoadForegroundMask',
           'PhrasesToTexts', 'SampleCaptions', 'RandomFlipPhrases',
           'mirror_phrase']

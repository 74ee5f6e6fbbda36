from .coco_text import CocoTextDataset
from .exclude_images import ExcludeImages, refcoco_eval_image_ids
from .foreground import ForegroundDataset
from .refcoco import RefCocoSentencesDataset
from .transforms import *  # noqa: F401,F403

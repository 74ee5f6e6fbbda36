from .coco_text import CocoTextDataset
from .foreground import ForegroundDataset
from .transforms import *  # noqa: F401,F403

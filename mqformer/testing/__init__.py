from .batch import make_batch
from .shapes_world import ShapesWorld, write_coco_instances, write_coco_panoptic

__all__ = ['ShapesWorld', 'write_coco_instances', 'write_coco_panoptic',
           'make_batch']

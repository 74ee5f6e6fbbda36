from .batch import make_batch
from .shapes_world import ShapesWorld
from .world_writers import (write_ade_semantic, write_coco_instances,
                            write_coco_panoptic, write_foreground, write_odvg,
                            write_refcoco)

__all__ = ['ShapesWorld', 'write_coco_instances', 'write_coco_panoptic',
           'write_ade_semantic', 'write_refcoco', 'write_odvg',
           'write_foreground', 'make_batch']

"""Synthetic training data (paper 3.4): SAM masks from boxes, object captions."""
from .captioner import ObjectCaptioner
from .runner import merge, parse_shard, run_images
from .sam_masks import SamBoxMasker

__all__ = ['SamBoxMasker', 'ObjectCaptioner', 'run_images', 'merge',
           'parse_shard']

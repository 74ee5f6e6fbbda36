"""mqformer: MQ-Former as an OpenMMLab (MMDetection 3.x) plugin.

``custom_imports = dict(imports=['mqformer'], allow_failed_imports=False)`` in a
config registers every component into mmdet's registries.
"""
from . import compat  # noqa: F401  (shims, applied by the entry points)
from . import (apis, datasets, engine, evaluation, models,  # noqa: F401
               visualization)
from .version import __version__

__all__ = ['__version__']

"""mqformer: MQ-Former as an OpenMMLab (MMDetection 3.x) plugin.

``custom_imports = dict(imports=['mqformer'], allow_failed_imports=False)`` in a
config registers every component into mmdet's registries.
"""
from . import compat
from .version import __version__

compat.apply_all()

from . import (apis, datasets, engine, evaluation,  # noqa: E402,F401
               models,
               visualization)

__all__ = ['__version__']

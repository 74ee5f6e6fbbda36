"""Compatibility shims for the OpenMMLab 2.x stack on current torch / numpy.

Applied once when :mod:`mqformer` is imported. Each shim is the smallest change
that makes an upstream code path we use work again, and each has a test in
``tests/test_compat.py`` that fails without it.

1. ``torch.load`` defaults to ``weights_only=True`` since torch 2.6, and mmengine
   0.10.7 calls ``torch.load(filename, map_location=...)`` when loading and
   resuming checkpoints. Its checkpoints hold a ``message_hub`` with
   :class:`~mmengine.logging.HistoryBuffer` objects and numpy arrays and scalars,
   which the restricted unpickler refuses. We keep ``weights_only=True`` (a
   checkpoint from an untrusted path still cannot run code) and allow-list just
   these types with :func:`torch.serialization.add_safe_globals`.
2. mmengine's ``HistoryBuffer.__getstate__`` pickles its statistics methods
   (``HistoryBuffer.min``, ...) as ``getattr(HistoryBuffer, 'min')``; allowing
   ``getattr`` would defeat ``weights_only``. Those methods live in a
   class-level registry that ``__setstate__`` restores anyway, so the shim
   pickles a buffer without them (checkpoints saved by stock mmengine with a
   message hub still need ``weights_only=False`` from a trusted source).
3. CPU-only multi-process training (``tools/dist_train.sh CONFIG 2`` on a
   machine without CUDA, gloo backend). mmengine 0.10.7's pytorch launcher
   (``mmengine/dist/utils.py``, ``_init_dist_pytorch``) calls
   ``torch.cuda.set_device(local_rank)`` unconditionally, which raises
   ``AttributeError: module 'torch._C' has no attribute '_cuda_setDevice'``
   on a CPU-only torch, and ``Runner.wrap_model`` passes
   ``device_ids=[LOCAL_RANK]`` to DDP, which torch refuses for a CPU module.
   :func:`cpu_distributed` is not applied on import: ``tools/train.py`` and
   ``tools/test.py`` call it for a run with a launcher and no CUDA; it makes
   ``set_device`` a no-op only while the runner sets up the process group,
   switches an ``nccl`` backend to ``gloo`` and wraps the model with
   ``device_ids=None``.
"""
import logging
from contextlib import contextmanager

import numpy as np
import torch

_APPLIED = False


def mmengine_checkpoint_safe_globals() -> list:
    """The non-tensor types an mmengine checkpoint stores (message hub, meta)."""
    from mmengine.logging import HistoryBuffer
    multiarray = getattr(np, '_core', None)
    multiarray = (multiarray.multiarray
                  if multiarray is not None else np.core.multiarray)
    safe = [
        HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray,
        np.dtype
    ]
    # numpy >= 1.25 pickles dtypes through their classes (e.g. Float64DType)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType') and isinstance(getattr(dtypes, name), type)
        ]
    return safe


def allow_mmengine_checkpoints() -> None:
    """Shim 1: let ``weights_only=True`` load mmengine checkpoints."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 loads everything anyway
        add(mmengine_checkpoint_safe_globals())


def _history_buffer_getstate(self) -> dict:
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)  # restored by __setstate__
    return state


def picklable_history_buffer() -> None:
    """Shim 2: HistoryBuffer pickles without ``getattr`` references."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate


@contextmanager
def cpu_distributed(cfg):
    """Shim 3 (see the module docstring), as a context for building the
    runner: ``with cpu_distributed(cfg): runner = Runner.from_cfg(cfg)``.
    Does nothing with CUDA or without a launcher."""
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        yield cfg
        return
    from mmengine.logging import print_log
    env = cfg.setdefault('env_cfg', {})
    dist_cfg = env.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
        print_log('no CUDA: distributed backend nccl -> gloo',
                  logger='current', level=logging.WARNING)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None  # a CPU module takes no device ids
    cfg.model_wrapper_cfg = wrapper
    set_device = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield cfg
    finally:
        torch.cuda.set_device = set_device


def apply_all() -> None:
    global _APPLIED
    if _APPLIED:
        return
    allow_mmengine_checkpoints()
    picklable_history_buffer()
    _APPLIED = True

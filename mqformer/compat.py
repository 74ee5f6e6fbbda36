"""Compatibility shims for the OpenMMLab 2.x stack on current torch / numpy.

Each shim is the smallest change that makes an upstream code path we use work
again, and each has a test (``tests/test_compat.py``,
``tests/test_distributed.py``, ``tests/test_kill_resume.py``) that fails
without it. Nothing is patched when :mod:`mqformer` is imported; each shim is
applied where it is needed, by the entry points, and undone afterwards.

1. Checkpoint I/O, :func:`checkpoint_io` (``tools/train.py``,
   ``tools/test.py``, ``tools/demo.py``, :class:`MQFormerInferencer`).
   ``torch.load`` defaults to ``weights_only=True`` since torch 2.6 and
   mmengine 0.10.7 calls ``torch.load(filename, map_location=...)`` when
   loading and resuming (upstream: open-mmlab/mmengine issue #1655, "torch.load
   weights_only error", and the open PR #1650, which passes
   ``weights_only=False`` instead and so lets a checkpoint run code). Its
   checkpoints hold a ``message_hub`` with
   :class:`~mmengine.logging.HistoryBuffer` objects and numpy arrays and
   scalars, which the restricted unpickler refuses. Inside the context we
   keep ``weights_only=True`` (a checkpoint from an untrusted path cannot
   run code) and allow-list just these types
   (``torch.serialization.safe_globals``); mmengine's local-file loader is
   replaced by :func:`load_from_local_weights_only`, which refuses anything else
   with a message naming the file and the refused global.
2. Also inside :func:`checkpoint_io`: mmengine's
   ``HistoryBuffer.__getstate__`` pickles its statistics methods
   (``HistoryBuffer.min``, ...) as ``getattr(HistoryBuffer, 'min')`` (pickle
   protocol 2, which ``torch.save`` uses);
   allowing ``getattr`` would defeat ``weights_only``. Those methods live in
   a class-level registry that ``__setstate__`` restores anyway, so a buffer
   is pickled without them (checkpoints saved by stock mmengine with a
   message hub still need ``weights_only=False`` from a trusted source).
   Saving is atomic inside the context too (:func:`save_checkpoint_atomic`:
   mmengine writes the checkpoint file in place, so a run killed while
   saving leaves a truncated file).
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
   ``device_ids=None``. (No upstream issue found; mmengine's launcher
   assumes a GPU per process.)
"""
import logging
import os
import os.path as osp
import pickle
import re
from contextlib import contextmanager

import numpy as np
import torch

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


def _history_buffer_getstate(self) -> dict:
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)  # restored by __setstate__
    return state


def load_from_local_weights_only(filename: str, map_location=None) -> dict:
    """mmengine's ``load_from_local`` with ``weights_only=True`` spelled out
    and a refusal that says what was refused and why."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r'GLOBAL ([\w.]+)', str(e))
        what = found.group(1) if found else 'a type outside the allow-list'
        raise RuntimeError(
            f'{filename}: refused to load this checkpoint: its pickle '
            f'references {what}, which a weights-only load does not allow '
            '(it could run code). mqformer loads tensors and the mmengine '
            'message-hub types only. If you trust the file, convert it '
            'once: torch.save(torch.load(path, weights_only=False)'
            "['state_dict'], new_path).") from None


def save_checkpoint_atomic(checkpoint: dict, filename: str,
                           **kwargs) -> None:
    """mmengine's ``save_checkpoint``, but a local file is written under a
    temporary name and renamed, so a run killed while saving leaves the
    previous checkpoints whole (mmengine writes the file in place)."""
    from mmengine.runner import checkpoint as ckpt_module
    if '://' in filename:
        return ckpt_module.save_checkpoint(checkpoint, filename, **kwargs)
    tmp = f'{filename}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


@contextmanager
def checkpoint_io():
    """Shims 1 and 2 (module docstring) for the duration of a run that
    saves or loads mmengine checkpoints; everything is restored on exit."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import runner as runner_module
    from mmengine.runner.checkpoint import CheckpointLoader
    old_state = HistoryBuffer.__dict__.get('__getstate__')
    old_loader = CheckpointLoader._schemes.get('')
    old_save = runner_module.save_checkpoint
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    CheckpointLoader._schemes[''] = load_from_local_weights_only
    runner_module.save_checkpoint = save_checkpoint_atomic
    try:
        with torch.serialization.safe_globals(
                mmengine_checkpoint_safe_globals()):
            yield
    finally:
        if old_state is None:
            del HistoryBuffer.__getstate__
        else:
            HistoryBuffer.__getstate__ = old_state
        if old_loader is not None:
            CheckpointLoader._schemes[''] = old_loader
        runner_module.save_checkpoint = old_save


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

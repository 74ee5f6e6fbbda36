"""glibc malloc settings for CPU training: freed memory kept for reuse.

PyTorch has no caching allocator on the CPU: every tensor comes from the C
library's ``malloc``. A training step allocates and frees tensors of the same
sizes every iteration (activations, matching costs, gradients), and glibc's
defaults hand freed memory back to the kernel (a free top of the heap above
``M_TRIM_THRESHOLD`` is trimmed, and blocks above ``M_MMAP_THRESHOLD`` are
mapped and unmapped one by one), so the next step takes a page fault for
every 4 KiB of them again. On an R50 training step (batch 2, 384 px) that
was 0.1-0.33 M faults a step for MQ-Former and 0.1-0.16 M for Mask2Former, up
to 2.6 s of system time in a 6-8 s step, varying from step to step; with
:func:`retain_freed_memory` about 0.01 M, and steps 3-6% faster for both
(benchmarks/README.md).

:func:`retain_freed_memory` raises both thresholds, so that freed memory
stays in the process for the next step (what preloading jemalloc or
tcmalloc does for PyTorch on the CPU, without installing either).
``tools/train.py`` calls it for CPU training; ``env_cfg.malloc_cfg`` in a
config sets the thresholds, ``None`` keeps glibc's defaults.
"""
import ctypes
import ctypes.util
from typing import Optional

import torch
from mmengine.logging import print_log

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# mallopt takes an int: 2 GiB - 1 is the largest threshold it can set
_INT_MAX_MB = (2**31 - 1) >> 20


def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library('c')
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    # glibc only: other C libraries (musl, macOS) lack mallopt or these
    # parameters
    return libc if hasattr(libc, 'gnu_get_libc_version') and \
        hasattr(libc, 'mallopt') else None


def retain_freed_memory(mmap_threshold_mb: int = 1024,
                        trim_threshold_mb: int = 2047) -> bool:
    """Keep freed memory in the process (process-wide; forked data loader
    workers inherit it).

    Args:
        mmap_threshold_mb (int): blocks up to this size come from the heap
            (reused after a free) instead of their own mapping.
        trim_threshold_mb (int): free memory at the top of the heap is handed
            back to the kernel only above this.

    Returns:
        bool: whether the settings were applied (False where the C library
        is not glibc).
    """
    for name, mb in (('mmap_threshold_mb', mmap_threshold_mb),
                     ('trim_threshold_mb', trim_threshold_mb)):
        if not 0 < mb <= _INT_MAX_MB:
            raise ValueError(f'malloc_cfg.{name}={mb}: must be in '
                             f'(0, {_INT_MAX_MB}] (mallopt takes an int)')
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold_mb << 20))
    ok &= libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold_mb << 20))
    return bool(ok)


def setup_cpu_malloc(cfg) -> bool:
    """Apply a config's ``env_cfg.malloc_cfg`` (:func:`retain_freed_memory`'s
    arguments; absent: its defaults; ``None``: glibc's defaults) when
    training on the CPU; GPU training leaves the host allocator alone.
    Returns whether the settings were applied."""
    malloc_cfg = (cfg.get('env_cfg') or {}).get('malloc_cfg', {})
    if malloc_cfg is None or torch.cuda.is_available():
        return False
    applied = retain_freed_memory(**malloc_cfg)
    if applied:
        print_log('CPU training: freed memory is kept for reuse '
                  f'(env_cfg.malloc_cfg={dict(malloc_cfg) or "defaults"}; '
                  'None keeps glibc\'s defaults)', logger='current')
    return applied

"""mmcv's CUDA multi-scale deformable attention without the full mmcv CUDA
build (about half an hour even on 16 cores), for the GPU check.

:func:`install` compiles mmcv 2.1.0's own kernel sources (shipped inside the
installed mmcv under ``ops/csrc``) with a small binding
(``ms_deform_attn_binding.cpp``) and registers the result as ``mmcv._ext``,
so ``mmcv.ops.MultiScaleDeformableAttention`` runs mmcv's real CUDA kernel.
Every other mmcv op raises a clear error when called (not when imported).
Only for a checkout whose mmcv was installed without ops (``MMCV_WITH_OPS=0``);
a full CUDA build of mmcv (``FORCE_CUDA=1 bash tools/install.sh``) needs none
of this.
"""
import importlib.machinery
import os
import os.path as osp
import sys
import types

HERE = osp.dirname(osp.abspath(__file__))
KERNEL_FUNCS = ('ms_deform_attn_forward', 'ms_deform_attn_backward')


def build():
    """The compiled extension module (cached by torch under
    ``TORCH_EXTENSIONS_DIR``)."""
    import importlib.util
    from torch.utils.cpp_extension import load
    mmcv_dir = osp.dirname(importlib.util.find_spec('mmcv').origin)
    csrc = osp.join(mmcv_dir, 'ops', 'csrc')
    os.environ.setdefault('TORCH_CUDA_ARCH_LIST', '9.0')
    return load(
        name='mmcv_ms_deform_attn',
        sources=[
            osp.join(HERE, 'ms_deform_attn_binding.cpp'),
            osp.join(csrc, 'pytorch', 'ms_deform_attn.cpp'),
            osp.join(csrc, 'pytorch', 'cuda', 'ms_deform_attn_cuda.cu'),
        ],
        extra_include_paths=[
            osp.join(HERE, 'thc_shim'),
            osp.join(csrc, 'common'),
            osp.join(csrc, 'common', 'cuda'),
        ],
        extra_cflags=['-O3', '-DMMCV_WITH_CUDA'],
        extra_cuda_cflags=['-O3', '-DMMCV_WITH_CUDA'],
        verbose=False)


def install():
    """Register the kernel as ``mmcv._ext`` (before ``mmcv.ops`` is
    imported); returns the extension module."""
    if 'mmcv.ops' in sys.modules:
        raise RuntimeError('install() must run before mmcv.ops is imported')
    ext = build()
    shim = types.ModuleType('mmcv._ext')
    # mmengine's mmcv_full_available() asks pkgutil for its loader
    shim.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)

    def missing(name):
        def call(*args, **kwargs):
            raise NotImplementedError(
                f'mmcv op {name!r} is not built here: only multi-scale '
                'deformable attention was compiled (benchmarks/gpu)')
        return call

    def getattr_(name):
        if name in KERNEL_FUNCS:
            return getattr(ext, name)
        if name.startswith('__'):
            raise AttributeError(name)
        return missing(name)

    shim.__getattr__ = getattr_
    import mmcv
    sys.modules['mmcv._ext'] = shim
    mmcv._ext = shim
    return ext

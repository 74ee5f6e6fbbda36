"""Mixed precision on the CPU: bf16 autocast (``tools/train.py --amp``)."""
from contextlib import contextmanager

import torch

from mmdet.registry import OPTIM_WRAPPERS
from .non_finite_guard import NonFiniteGuardOptimWrapper


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(NonFiniteGuardOptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast('cpu',
    dtype=torch.bfloat16)``.

    mmengine's ``AmpOptimWrapper`` asserts a CUDA/NPU/MLU device and scales
    fp16 losses; on the CPU, bf16 has float32's exponent range, so no loss
    scaling is needed and gradients and optimizer state stay float32.
    ``tools/train.py --amp`` picks this wrapper when CUDA is unavailable
    and mmengine's ``AmpOptimWrapper`` (fp16, dynamic loss scale) on GPUs.
    Non-finite losses skip the step (:class:`NonFiniteGuardOptimWrapper`).
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(
                device_type='cpu', dtype=torch.bfloat16):
            yield

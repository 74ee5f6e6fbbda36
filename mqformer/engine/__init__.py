from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .cpu_malloc import retain_freed_memory, setup_cpu_malloc
from .non_finite_guard import NONFINITE_TERMS, NonFiniteGuardOptimWrapper
from .progress_hook import ProgressHook
from .rng_state_hook import RNGStateHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['TimeBudgetHook', 'CPUAmpOptimWrapper', 'ProgressHook',
           'NonFiniteGuardOptimWrapper', 'NONFINITE_TERMS', 'RNGStateHook',
           'retain_freed_memory', 'setup_cpu_malloc']

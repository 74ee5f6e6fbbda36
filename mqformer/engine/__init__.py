from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .time_budget_hook import TimeBudgetHook

__all__ = ['TimeBudgetHook', 'CPUAmpOptimWrapper']

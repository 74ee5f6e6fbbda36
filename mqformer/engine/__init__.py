from .time_budget_hook import TimeBudgetHook

__all__ = ['TimeBudgetHook']

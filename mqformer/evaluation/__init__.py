from .metrics import *  # noqa: F401,F403
from .seginw_evaluator import SeginWEvaluator

__all__ = ['SeginWEvaluator']

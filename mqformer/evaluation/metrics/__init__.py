from .foreground_metric import ForegroundMetric

__all__ = ['ForegroundMetric']

from .foreground_metric import ForegroundMetric
from .submission_metrics import MQRefSegMetric, MQSemSegMetric

__all__ = ['ForegroundMetric', 'MQSemSegMetric', 'MQRefSegMetric']

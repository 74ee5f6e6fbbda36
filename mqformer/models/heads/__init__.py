from .mq_head import MQHead

__all__ = ['MQHead']

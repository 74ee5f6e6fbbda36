from .mq_fusion_head import MQFusionHead
from .mq_head import MQHead

__all__ = ['MQHead', 'MQFusionHead']

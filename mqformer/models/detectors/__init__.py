from .mqformer import MQFormer

__all__ = ['MQFormer']

from .mq_visualizer import MQLocalVisualizer

__all__ = ['MQLocalVisualizer']

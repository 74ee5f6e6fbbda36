# The tiny query ablation's mechanism row: mixed queries (10 + 20) without
# the dual-query cross-attention (each type reads the other only through
# self-attention).
_base_ = './mqformer_tiny_shapes-panoptic.py'
model = dict(decoder=dict(layer_cfg=dict(dual_attn_cfg=False)))

# The tiny query ablation on the shapes world's panoptic data: conditional
# queries only, the same 30 in total as the mixed tiny model's 10 + 20.
_base_ = './mqformer_tiny_shapes-panoptic.py'
model = dict(query_mode='conditional', num_conditional_queries=30)

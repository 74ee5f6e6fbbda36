# Ablation baseline (paper Table 2): learnable queries only.
_base_ = './mqformer_r50_8xb2-50e_coco-instance.py'
model = dict(query_mode='learnable')

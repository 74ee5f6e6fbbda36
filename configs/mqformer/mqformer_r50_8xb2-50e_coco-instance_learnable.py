# Ablation baseline (paper Table 2): learnable queries only.
_base_ = './mqformer_r50_8xb2-50e_coco-instance.py'
# the same total as the mixed model's 100 learnable + 300 conditional (the
# paper gives every strategy 400 queries)
model = dict(query_mode='learnable', num_learnable_queries=400)

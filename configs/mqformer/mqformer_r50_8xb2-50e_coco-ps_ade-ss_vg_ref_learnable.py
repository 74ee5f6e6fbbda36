# Paper Table 2, COCO-PS + ADE-SS + VG + RefCOCO/+/g: learnable queries only, the same 400 queries in
# total as the mixed model's 100 learnable + 300 conditional.
_base_ = './mqformer_r50_8xb2-50e_coco-ps_ade-ss_vg_ref.py'
model = dict(query_mode='learnable', num_learnable_queries=400)

# Evaluate an MQ-Former R50 checkpoint on lvis:
#   python tools/test.py configs/mqformer/eval/mqformer_r50_eval_lvis.py CKPT
_base_ = [
    '../../_base_/models/mqformer_r50.py', '../../_base_/default_runtime.py',
    '../../_base_/datasets/lvis_v1.py'
]
model = dict(test_cfg=dict(instance_on=True, max_per_img=300, text_chunk=128))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.lvis_val}})
test_evaluator = {{_base_.lvis_evaluator}}
test_cfg = dict(type='TestLoop')

# Evaluate an MQ-Former R50 checkpoint on uhrsd:
#   python tools/test.py configs/mqformer/eval/mqformer_r50_eval_uhrsd.py CKPT
_base_ = [
    '../../_base_/models/mqformer_r50.py', '../../_base_/default_runtime.py',
    '../../_base_/datasets/foreground.py'
]
model = dict(test_cfg=dict(instance_on=False, foreground_on=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.uhrsd_test}})
test_evaluator = {{_base_.fg_evaluator}}
test_cfg = dict(type='TestLoop')

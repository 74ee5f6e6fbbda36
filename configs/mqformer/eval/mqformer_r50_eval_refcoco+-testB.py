# Evaluate an MQ-Former R50 checkpoint on refcoco+-testB:
#   python tools/test.py configs/mqformer/eval/mqformer_r50_eval_refcoco+-testB.py CKPT
_base_ = [
    '../../_base_/models/mqformer_r50.py', '../../_base_/default_runtime.py',
    '../../_base_/datasets/refcoco+.py'
]
model = dict(test_cfg=dict(referring_on=True, instance_on=False))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.refcoco_plus_testB}})
test_evaluator = {{_base_.refcoco_plus_evaluator}}
test_cfg = dict(type='TestLoop')

# Evaluate an MQ-Former R50 checkpoint on coco-is:
#   python tools/test.py configs/mqformer/eval/mqformer_r50_eval_coco-is.py CKPT
_base_ = [
    '../../_base_/models/mqformer_r50.py', '../../_base_/default_runtime.py',
    '../../_base_/datasets/coco_instance.py'
]
model = dict(test_cfg=dict(instance_on=True, max_per_img=100))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.coco_instance_val}})
test_evaluator = {{_base_.coco_instance_evaluator}}
test_cfg = dict(type='TestLoop')

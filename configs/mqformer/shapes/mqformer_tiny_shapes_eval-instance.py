# Evaluate a shapes-world checkpoint on the instance task:
#   python tools/test.py \
#       configs/mqformer/shapes/mqformer_tiny_shapes_eval-instance.py CKPT
_base_ = [
    '../../_base_/models/mqformer_tiny.py',
    '../../_base_/datasets/shapes_world_multitask.py',
    '../../_base_/default_runtime.py'
]
# 100: COCO's maxDets and mmdet's Mask2Former default (the baseline's)
model = dict(test_cfg=dict(instance_on=True, max_per_img=100))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.shapes_instance_val}})
test_evaluator = {{_base_.shapes_instance_evaluator}}
test_cfg = dict(type='TestLoop')

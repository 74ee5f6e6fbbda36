# The demo's model: tiny MQ-Former trained on the shapes world's panoptic,
# referring and foreground data at once (one ConcatDataset), on the CPU.
# Evaluate each task with configs/mqformer/shapes/*.py.
_base_ = [
    '../_base_/models/mqformer_tiny.py',
    '../_base_/datasets/shapes_world_multitask.py',
    '../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(panoptic_on=True, instance_on=True))
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    # iteration-based: mmengine waits 2 s at each restart of a finite
    # sampler's loader (every 50 iterations on 200 images)
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ConcatDataset',
        datasets=[{{_base_.shapes_panoptic_train}},
                  {{_base_.shapes_referring_train}},
                  {{_base_.shapes_foreground_train}}]))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.shapes_panoptic_val}})
test_dataloader = val_dataloader
val_evaluator = {{_base_.shapes_panoptic_evaluator}}
test_evaluator = val_evaluator
train_cfg = dict(type='IterBasedTrainLoop', max_iters=600, val_interval=600)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper',  # NaN/inf loss: step skipped
    optimizer=dict(type='AdamW', lr=4e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, milestones=[500], gamma=0.1)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=600, by_epoch=False))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=4)

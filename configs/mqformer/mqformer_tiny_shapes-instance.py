# Tiny MQ-Former on the generated shapes world (COCO instance format), CPU.
_base_ = [
    '../_base_/models/mqformer_tiny.py',
    '../_base_/datasets/shapes_world_instance.py',
    '../_base_/default_runtime.py'
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200, val_interval=200)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='NonFiniteGuardOptimWrapper',  # NaN/inf loss: step skipped
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=2)

default_scope = 'mmdet'
custom_imports = dict(imports=['mqformer'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
    # CPU training (tools/train.py): glibc keeps freed memory for the next
    # step instead of faulting it in again (mqformer/engine/cpu_malloc.py);
    # None keeps glibc's defaults
    malloc_cfg=dict(mmap_threshold_mb=1024, trim_threshold_mb=2047),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='MQLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False

# Evaluate a shapes-world checkpoint on the panoptic task:
#   python tools/test.py \
#       configs/mqformer/shapes/mqformer_tiny_shapes_eval-panoptic.py CKPT
_base_ = [
    '../../_base_/models/mqformer_tiny.py',
    '../../_base_/datasets/shapes_world_multitask.py',
    '../../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(panoptic_on=True, instance_on=False))
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.shapes_panoptic_val}})
test_evaluator = {{_base_.shapes_panoptic_evaluator}}
test_cfg = dict(type='TestLoop')
# calibration images: tools/analysis_tools/calibrate_thresholds.py chooses
# object_mask_thr and iou_thr here
val_dataloader = dict(test_dataloader, dataset={{_base_.shapes_panoptic_calib}})
val_evaluator = {{_base_.shapes_panoptic_calib_evaluator}}
val_cfg = dict(type='ValLoop')

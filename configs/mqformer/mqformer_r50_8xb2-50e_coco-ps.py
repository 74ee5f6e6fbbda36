# Table 2, row "COCO-PS": MQ-Former R50 (mixed 100 + 300) on COCO panoptic;
# evaluates panoptic (PQ), instance (mask AP) and semantic outputs at once.
_base_ = [
    '../_base_/models/mqformer_r50.py', '../_base_/datasets/coco_panoptic.py',
    '../_base_/schedules/schedule_50e.py', '../_base_/default_runtime.py'
]
model = dict(test_cfg=dict(panoptic_on=True, instance_on=True,
                           semantic_on=False, max_per_img=100))
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset={{_base_.coco_panoptic_train}})
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.coco_panoptic_val}})
test_dataloader = val_dataloader
val_evaluator = {{_base_.coco_panoptic_evaluator}}
test_evaluator = val_evaluator

# Template: fine-tune a trained MQ-Former R50 on your own classes (a COCO-format
# dataset) without losing its open vocabulary (docs/finetune.md). Edit
# my_classes, my_root and load_from, then:
#   bash tools/dist_train.sh THIS_CONFIG 8
# The recipe (measured on generated data by benchmarks/finetune_retention.py):
# frozen text encoder and text projection, lr / 10 of pre-training, a short
# schedule, and replay of the original data (COCO here) next to yours.
_base_ = ['../mqformer_r50_8xb2-50e_coco-instance.py']
load_from = 'work_dirs/mqformer_r50_8xb2-50e_coco-instance/epoch_50.pth'
my_root = 'data/my_dataset/'
my_classes = ['forklift', 'pallet', 'safety vest']  # your names, as texts
my_train = dict(
    type='CocoTextDataset',  # COCO json; bad annotations are named, not dropped
    data_root=my_root,
    metainfo=dict(classes=my_classes),
    ann_file='annotations/train.json',
    data_prefix=dict(img='images/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    return_classes=True,
    pipeline={{_base_.train_pipeline}})
replay_train = {{_base_.train_dataloader.dataset}}  # the original COCO data
train_dataloader = dict(
    sampler=dict(_delete_=True, type='MultiDataSampler',
                 dataset_ratio=[1, 1]),  # [1] and drop replay: no replay
    batch_sampler=dict(_delete_=True, type='MultiDataAspectRatioBatchSampler',
                       batch_size=[2, 2], num_datasets=2),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['classes', 'palette'],
        datasets=[my_train, replay_train]))
val_dataloader = dict(
    dataset=dict(
        type='CocoTextDataset',
        data_root=my_root,
        metainfo=dict(classes=my_classes),
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=my_root + 'annotations/val.json')
test_evaluator = val_evaluator
model = dict(text_encoder=dict(frozen=True))
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[10], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(lr=1e-5),
    paramwise_cfg=dict(
        custom_keys=dict(
            backbone=dict(lr_mult=0.1),
            text_encoder=dict(lr_mult=0.0, decay_mult=0.0),
            text_proj=dict(lr_mult=0.0, decay_mult=0.0))))

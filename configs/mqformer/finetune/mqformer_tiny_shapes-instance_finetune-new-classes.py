# Fine-tune a trained MQ-Former on new classes without losing the open
# vocabulary (docs/finetune.md), on generated shapes worlds: the model was
# trained on 12 colour-shape classes (data/shapes_world_old: images with
# those only); the new data (data/shapes_world_new) names 6 others (purple,
# orange) and leaves the old objects in its images unlabelled. Measured by
# benchmarks/finetune_retention.py, which writes both worlds.
#
#   python tools/dataset_converters/coco_class_subset.py \
#       data/shapes_world_new/annotations/instances_train.json \
#       data/shapes_world_new/annotations/instances_train_new.json \
#       --classes "purple circle" ...
#   python tools/train.py THIS_CONFIG --cfg-options load_from=TRAINED.pth
#
# The recipe: (1) start from the trained weights (load_from); (2) keep the
# text side fixed - the frozen text encoder *and* the text projection - so
# the old names keep their place in the query space; (3) a lower learning
# rate and a short schedule; (4) optionally replay the original data next to
# the new (ConcatDataset + mmdet's MultiDataSampler; drop replay_train from
# the list to fine-tune on the new data alone).
_base_ = ['../mqformer_tiny_shapes-instance.py']
load_from = None  # the trained model: --cfg-options load_from=CKPT
data_root = 'data/shapes_world_new/'
replay_root = 'data/shapes_world_old/'  # the data the model was trained on
new_classes = [f'{c} {s}' for c in ('purple', 'orange')
               for s in ('circle', 'square', 'triangle')]
old_classes = [f'{c} {s}' for c in ('red', 'green', 'blue', 'yellow')
               for s in ('circle', 'square', 'triangle')]
new_train = dict(
    type='CocoDataset',
    data_root=data_root,
    metainfo=dict(classes=new_classes),
    ann_file='annotations/instances_train_new.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=False),
    return_classes=True,
    pipeline={{_base_.train_pipeline}})
replay_train = dict(
    new_train,
    data_root=replay_root,
    metainfo=dict(classes=old_classes),
    ann_file='annotations/instances_train.json')
train_dataloader = dict(
    sampler=dict(_delete_=True, type='MultiDataSampler',
                 dataset_ratio=[1, 1]),
    batch_sampler=dict(_delete_=True, type='MultiDataAspectRatioBatchSampler',
                       batch_size=[2, 2], num_datasets=2),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        ignore_keys=['classes', 'palette'],
        datasets=[new_train, replay_train]))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=new_classes),
        ann_file='annotations/instances_val_new.json'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val_new.json')
test_evaluator = val_evaluator
model = dict(text_encoder=dict(frozen=True))
train_cfg = dict(max_iters=200, val_interval=200)
optim_wrapper = dict(
    optimizer=dict(lr=5e-5),
    paramwise_cfg=dict(
        custom_keys=dict(
            text_encoder=dict(lr_mult=0.0, decay_mult=0.0),
            text_proj=dict(lr_mult=0.0, decay_mult=0.0))))

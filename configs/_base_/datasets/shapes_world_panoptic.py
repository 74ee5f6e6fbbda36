# The generated shapes world in COCO panoptic format: every segment (thing shapes
# and stuff regions) becomes a (text, box, mask) triplet.
#   data/shapes_world/{train,val}/*.jpg
#   data/shapes_world/annotations/panoptic_{train,val}.json + panoptic_{split}/*.png
dataset_type = 'CocoPanopticDataset'
data_root = 'data/shapes_world/'
thing_classes = [
    f'{c} {s}'
    for c in ('red', 'green', 'blue', 'yellow', 'purple', 'orange')
    for s in ('circle', 'square', 'triangle')
]
stuff_classes = ['sky', 'grass', 'water', 'road']
metainfo = dict(
    classes=thing_classes + stuff_classes,
    thing_classes=thing_classes,
    stuff_classes=stuff_classes)
image_size = (160, 160)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticSegments'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='ClassNamesToTexts', num_negatives=-1, task='panoptic'),
    dict(type='PackMQInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadPanopticSegments'),
    dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
         task='panoptic'),
    dict(type='PackMQInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False),
        return_classes=True,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        test_mode=True,
        return_classes=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val.json',
    seg_prefix=data_root + 'annotations/panoptic_val/')
test_evaluator = val_evaluator

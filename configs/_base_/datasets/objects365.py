# Objects365 v2 in COCO format: boxes only, or with synthetic SAM masks
# (the -syn-m json from tools/synthetic/generate_masks.py) and captions.
#   data/Objects365/Obj365_v2/{train,val}/..., annotations/zhiyuan_objv2_train.json
o365_root = 'data/Objects365/Obj365_v2/'
o365_det_train = dict(
    type='CocoTextDataset',
    data_root=o365_root,
    ann_file='annotations/zhiyuan_objv2_train.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
        dict(type='ClassNamesToTexts', num_negatives=100, task='detection'),
        dict(type='PackMQInputs')
    ])
o365_syn_m_train = dict(
    type='CocoTextDataset',
    data_root=o365_root,
    ann_file='annotations/zhiyuan_objv2_train-syn-m.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
        dict(type='ClassNamesToTexts', num_negatives=100, task='instance'),
        dict(type='PackMQInputs')
    ])
o365_syn_caption_train = dict(
    type='CocoTextDataset',
    data_root=o365_root,
    ann_file='annotations/zhiyuan_objv2_train-syn.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='SampleCaptions'),
        dict(type='RandomFlipPhrases', prob=0.5),  # left <-> right in text
        dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
        dict(type='PhrasesToTexts', task='referring'),
        dict(type='PackMQInputs')
    ])

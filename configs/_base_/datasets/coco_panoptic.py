# COCO panoptic (COCO-PS): every thing and stuff segment -> (class name, box, mask).
#   data/coco/{train2017,val2017}/*.jpg
#   data/coco/annotations/panoptic_{train,val}2017.json + panoptic_{train,val}2017/*.png
coco_panoptic_root = 'data/coco/'
coco_panoptic_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticSegments'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=(1024, 1024), ratio_range=(0.1, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=(1024, 1024), crop_type='absolute',
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='ClassNamesToTexts', num_negatives=-1, task='panoptic'),
    dict(type='PackMQInputs')
]
coco_panoptic_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadPanopticSegments'),
    dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
         task='panoptic'),
    dict(type='PackMQInputs')
]
coco_panoptic_train = dict(
    type='CocoPanopticDataset',
    data_root=coco_panoptic_root,
    ann_file='annotations/panoptic_train2017.json',
    data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    return_classes=True,
    pipeline=coco_panoptic_train_pipeline)
coco_panoptic_val = dict(
    type='CocoPanopticDataset',
    data_root=coco_panoptic_root,
    ann_file='annotations/panoptic_val2017.json',
    data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
    test_mode=True,
    return_classes=True,
    pipeline=coco_panoptic_test_pipeline)
coco_panoptic_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=coco_panoptic_root + 'annotations/panoptic_val2017.json',
    seg_prefix=coco_panoptic_root + 'annotations/panoptic_val2017/')

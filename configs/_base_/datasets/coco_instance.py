# COCO instances (IS) and detection (OD): CocoTextDataset, class names as texts.
#   data/coco/{train2017,val2017}/*.jpg, data/coco/annotations/instances_*2017.json
coco_instance_root = 'data/coco/'
coco_instance_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
         task='instance'),
    dict(type='PackMQInputs')
]
coco_instance_val = dict(
    type='CocoTextDataset',
    data_root=coco_instance_root,
    ann_file='annotations/instances_val2017.json',
    data_prefix=dict(img='val2017/'),
    test_mode=True,
    return_classes=True,
    pipeline=coco_instance_test_pipeline)
coco_instance_evaluator = dict(
    type='CocoMetric',
    ann_file=coco_instance_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'])
coco_detection_evaluator = dict(
    type='CocoMetric',
    ann_file=coco_instance_root + 'annotations/instances_val2017.json',
    metric=['bbox'])

# ADE20K panoptic (150 classes) in COCO panoptic format
# (tools/dataset_converters/ade20k2coco.py of mmdet makes it).
ade_pan_root = 'data/ADEChallengeData2016/'
ade_panoptic_val = dict(
    type='ADE20KPanopticDataset',
    data_root=ade_pan_root,
    ann_file='ade20k_panoptic_val.json',
    data_prefix=dict(img='images/validation/', seg='ade20k_panoptic_val/'),
    test_mode=True,
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2560, 640), keep_ratio=True),
        dict(type='LoadPanopticSegments'),
        dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
             task='panoptic'),
        dict(type='PackMQInputs')
    ])
ade_panoptic_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=ade_pan_root + 'ade20k_panoptic_val.json',
    seg_prefix=ade_pan_root + 'ade20k_panoptic_val/')

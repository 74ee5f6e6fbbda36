# LVIS v1 (1,203 classes; needs `pip install lvis`): images are COCO 2017.
#   data/lvis_v1/annotations/lvis_v1_{train,val}.json, data/coco/{train,val}2017
lvis_root = 'data/lvis_v1/'
lvis_val = dict(
    type='LVISV1Dataset',
    data_root=lvis_root,
    ann_file='annotations/lvis_v1_val.json',
    data_prefix=dict(img=''),
    test_mode=True,
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(1333, 800), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
             task='instance'),
        dict(type='PackMQInputs')
    ])
lvis_evaluator = dict(
    type='LVISMetric',
    ann_file=lvis_root + 'annotations/lvis_v1_val.json',
    metric=['bbox', 'segm'])

# BDD100K semantic segmentation (19 Cityscapes classes).
#   data/bdd100k/images/10k/val/*.jpg, data/bdd100k/labels/sem_seg/masks/val/*.png
bdd_root = 'data/bdd100k/'
bdd_classes = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
               'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
               'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
               'bicycle')
bdd_val = dict(
    type='BaseSegDataset',
    data_root=bdd_root,
    metainfo=dict(classes=bdd_classes),
    data_prefix=dict(img_path='images/10k/val',
                     seg_map_path='labels/sem_seg/masks/val'),
    img_suffix='.jpg', seg_map_suffix='.png', test_mode=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=False, with_label=False,
             with_seg=True),
        dict(type='SemanticToInstances'),
        dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
             task='semantic'),
        dict(type='PackMQInputs')
    ])
bdd_evaluator = dict(type='SemSegMetric', iou_metrics=['mIoU'])

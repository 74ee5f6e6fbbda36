# Pascal Context 59 / 459 semantic segmentation (detectron2-style label PNGs /
# TIFs: 0..58 / 0..458, 255 / 65535 unlabeled).
#   data/pascal_ctx_d2/images/validation/*.jpg
#   data/pascal_ctx_d2/annotations_ctx59/validation/*.png
#   data/pascal_ctx_d2/annotations_ctx459/validation/*.tif
pc_root = 'data/pascal_ctx_d2/'
pc59_classes = (
    'aeroplane', 'bag', 'bed', 'bedclothes', 'bench', 'bicycle', 'bird',
    'boat', 'book', 'bottle', 'building', 'bus', 'cabinet', 'car', 'cat',
    'ceiling', 'chair', 'cloth', 'computer', 'cow', 'cup', 'curtain', 'dog',
    'door', 'fence', 'floor', 'flower', 'food', 'grass', 'ground', 'horse',
    'keyboard', 'light', 'motorbike', 'mountain', 'mouse', 'person', 'plate',
    'platform', 'pottedplant', 'road', 'rock', 'sheep', 'shelves', 'sidewalk',
    'sign', 'sky', 'snow', 'sofa', 'table', 'track', 'train', 'tree', 'truck',
    'tvmonitor', 'wall', 'water', 'window', 'wood')
pc_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False,
         with_seg=True),
    dict(type='SemanticToInstances'),
    dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
         task='semantic'),
    dict(type='PackMQInputs')
]
pc59_val = dict(
    type='BaseSegDataset',
    data_root=pc_root,
    metainfo=dict(classes=pc59_classes),
    data_prefix=dict(img_path='images/validation',
                     seg_map_path='annotations_ctx59/validation'),
    img_suffix='.jpg', seg_map_suffix='.png', test_mode=True,
    pipeline=pc_test_pipeline)
# PC-459: the same with the 459 class names of detectron2's
# PASCAL_CTX_FULL_CATEGORIES (put them in metainfo.classes) and 16-bit TIFs.
pc459_val = dict(
    type='BaseSegDataset',
    data_root=pc_root,
    data_prefix=dict(img_path='images/validation',
                     seg_map_path='annotations_ctx459/validation'),
    img_suffix='.jpg', seg_map_suffix='.tif', test_mode=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, 512), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=False, with_label=False,
             with_seg=True, imdecode_backend='tifffile'),
        dict(type='SemanticToInstances', ignore_index=65535),
        dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
             task='semantic'),
        dict(type='PackMQInputs')
    ])
pc_evaluator = dict(type='SemSegMetric', iou_metrics=['mIoU'])

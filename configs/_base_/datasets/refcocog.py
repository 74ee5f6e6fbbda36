# refcocog referring segmentation (mmdet's RefCocoDataset: refs pickle +
# instances json); one free-form phrase per target, other phrases as negatives.
#   data/coco/train2014/*.jpg, data/coco/refcocog/instances.json, data/coco/refcocog/refs(umd).p
refcocog_root = 'data/coco/'
refcocog_train = dict(
    type='RefCocoSentencesDataset',
    data_root=refcocog_root,
    ann_file='refcocog/instances.json',
    split_file='refcocog/refs(umd).p',
    data_prefix=dict(img_path='train2014/'),
    split='train',
    text_mode='random',  # a new sentence per ref each load
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_mask=True, with_bbox=False,
             with_label=False),
        dict(type='RandomFlipPhrases', prob=0.5),  # left <-> right in text
        dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
        dict(type='PhrasesToTexts', task='referring'),
        dict(type='PackMQInputs')
    ])
refcocog_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_mask=True, with_bbox=False,
         with_label=False),
    dict(type='PhrasesToTexts', task='referring', shuffle=False,
             unique=False),
    dict(type='PackMQInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor', 'texts', 'text_type', 'task',
                    'with_mask', 'text_is_thing', 'gt_masks'))
]
refcocog_val = dict(
    type='RefCocoDataset',
    data_root=refcocog_root,
    ann_file='refcocog/instances.json',
    split_file='refcocog/refs(umd).p',
    data_prefix=dict(img_path='train2014/'),
    split='val',
    text_mode='original',
    test_mode=True,
    pipeline=refcocog_test_pipeline)
refcocog_test = dict(
    type='RefCocoDataset',
    data_root=refcocog_root,
    ann_file='refcocog/instances.json',
    split_file='refcocog/refs(umd).p',
    data_prefix=dict(img_path='train2014/'),
    split='test',
    text_mode='original',
    test_mode=True,
    pipeline=refcocog_test_pipeline)
refcocog_evaluator = dict(type='MQRefSegMetric', metric=['cIoU', 'mIoU'])

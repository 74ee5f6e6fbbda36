# refcoco+ referring segmentation (mmdet's RefCocoDataset: refs pickle +
# instances json); one free-form phrase per target, other phrases as negatives.
#   data/coco/train2014/*.jpg, data/coco/refcoco+/instances.json, data/coco/refcoco+/refs(unc).p
refcoco_plus_root = 'data/coco/'
refcoco_plus_train = dict(
    type='RefCocoSentencesDataset',
    data_root=refcoco_plus_root,
    ann_file='refcoco+/instances.json',
    split_file='refcoco+/refs(unc).p',
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
refcoco_plus_test_pipeline = [
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
refcoco_plus_val = dict(
    type='RefCocoDataset',
    data_root=refcoco_plus_root,
    ann_file='refcoco+/instances.json',
    split_file='refcoco+/refs(unc).p',
    data_prefix=dict(img_path='train2014/'),
    split='val',
    text_mode='original',
    test_mode=True,
    pipeline=refcoco_plus_test_pipeline)
refcoco_plus_testA = dict(
    type='RefCocoDataset',
    data_root=refcoco_plus_root,
    ann_file='refcoco+/instances.json',
    split_file='refcoco+/refs(unc).p',
    data_prefix=dict(img_path='train2014/'),
    split='testA',
    text_mode='original',
    test_mode=True,
    pipeline=refcoco_plus_test_pipeline)
refcoco_plus_testB = dict(
    type='RefCocoDataset',
    data_root=refcoco_plus_root,
    ann_file='refcoco+/instances.json',
    split_file='refcoco+/refs(unc).p',
    data_prefix=dict(img_path='train2014/'),
    split='testB',
    text_mode='original',
    test_mode=True,
    pipeline=refcoco_plus_test_pipeline)
refcoco_plus_evaluator = dict(type='MQRefSegMetric', metric=['cIoU', 'mIoU'])

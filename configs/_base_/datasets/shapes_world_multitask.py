# The generated shapes world for every task
# (tools/dataset_converters/make_shapes_world.py data/shapes_world).
shapes_root = 'data/shapes_world/'
shapes_things = [
    f'{c} {s}'
    for c in ('red', 'green', 'blue', 'yellow', 'purple', 'orange')
    for s in ('circle', 'square', 'triangle')
]
shapes_stuff = ['sky', 'grass', 'water', 'road']
shapes_meta = dict(
    classes=shapes_things + shapes_stuff,
    thing_classes=shapes_things,
    stuff_classes=shapes_stuff)
shapes_size = (160, 160)
shapes_tail = [
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=shapes_size, keep_ratio=True)
]
shapes_panoptic_train = dict(
    type='CocoPanopticDataset',
    data_root=shapes_root,
    metainfo=shapes_meta,
    ann_file='annotations/panoptic_train.json',
    data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
    filter_cfg=dict(filter_empty_gt=False),
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadPanopticSegments'), *shapes_tail,
        # every absent name a negative, as the test vocabulary: sampling 8
        # lost 5.4 stuff PQ on the crowded world (docs/fair_comparison.md)
        dict(type='ClassNamesToTexts', num_negatives=-1, task='panoptic'),
        dict(type='PackMQInputs')
    ])
shapes_referring_train = dict(
    type='RefCocoSentencesDataset',
    data_root=shapes_root + 'refcoco/',
    ann_file='refcoco/instances.json',
    split_file='refcoco/refs(unc).p',
    data_prefix=dict(img_path='train2014/'),
    split='train',
    text_mode='random',  # a new sentence per ref each load
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_mask=True, with_bbox=False,
             with_label=False),
        dict(type='RandomFlipPhrases', prob=0.5),  # left <-> right in text
        dict(type='Resize', scale=shapes_size, keep_ratio=True),
        dict(type='PhrasesToTexts', task='referring'),
        dict(type='PackMQInputs')
    ])
# grounding boxes + phrases (the Visual Genome analogue; no masks)
shapes_grounding_train = dict(
    type='ODVGDataset',
    data_root=shapes_root + 'vg/',
    ann_file='vg_odvg.jsonl',
    data_prefix=dict(img='images/'),
    filter_cfg=dict(filter_empty_gt=True),
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomFlipPhrases', prob=0.5),
        dict(type='Resize', scale=shapes_size, keep_ratio=True),
        dict(type='PhrasesToTexts', task='grounding', max_texts=60),
        dict(type='PackMQInputs')
    ])
shapes_foreground_train = dict(
    type='ForegroundDataset',
    data_root=shapes_root + 'fg/train/',
    data_prefix=dict(img='images', seg='masks'),
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadForegroundMask'), *shapes_tail,
        dict(type='ClassNamesToTexts', task='foreground'),
        dict(type='PackMQInputs')
    ])

shapes_resize = dict(type='Resize', scale=shapes_size, keep_ratio=True)
shapes_panoptic_val = dict(
    type='CocoPanopticDataset',
    data_root=shapes_root,
    metainfo=shapes_meta,
    ann_file='annotations/panoptic_val.json',
    data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
    test_mode=True,
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'), shapes_resize,
        dict(type='LoadPanopticSegments'),
        dict(type='ClassNamesToTexts', shuffle=False, task='panoptic'),
        dict(type='PackMQInputs')
    ])
# calibration images (make_shapes_world.py --calib N): post-processing
# thresholds are chosen here, never on the val (test) images
shapes_panoptic_calib = dict(
    shapes_panoptic_val,
    ann_file='annotations/panoptic_calib.json',
    data_prefix=dict(img='calib/', seg='annotations/panoptic_calib/'))
shapes_instance_val = dict(
    type='CocoTextDataset',
    data_root=shapes_root,
    metainfo=dict(classes=shapes_things),
    ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'),
    test_mode=True,
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'), shapes_resize,
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='ClassNamesToTexts', shuffle=False, task='instance'),
        dict(type='PackMQInputs')
    ])
shapes_semantic_val = dict(
    type='ADE20KSegDataset',
    data_root=shapes_root + 'ade/',
    metainfo=dict(classes=shapes_things + shapes_stuff),
    data_prefix=dict(img_path='images/validation',
                     seg_map_path='annotations/validation'),
    test_mode=True,
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'), shapes_resize,
        dict(type='LoadAnnotations', with_bbox=False, with_label=False,
             with_seg=True, reduce_zero_label=True),
        dict(type='SemanticToInstances'),
        dict(type='ClassNamesToTexts', shuffle=False, task='semantic'),
        dict(type='PackMQInputs')
    ])
shapes_referring_val = dict(
    type='RefCocoDataset',
    data_root=shapes_root + 'refcoco/',
    ann_file='refcoco/instances.json',
    split_file='refcoco/refs(unc).p',
    data_prefix=dict(img_path='train2014/'),
    split='val',
    text_mode='select_first',
    test_mode=True,
    pipeline=[
        dict(type='LoadImageFromFile'), shapes_resize,
        dict(type='LoadAnnotations', with_mask=True, with_bbox=False,
             with_label=False),
        dict(type='PhrasesToTexts', task='referring', shuffle=False,
             unique=False),
        dict(type='PackMQInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor', 'texts', 'text_type', 'task',
                        'with_mask', 'text_is_thing', 'gt_masks'))
    ])
shapes_foreground_val = dict(
    type='ForegroundDataset',
    data_root=shapes_root + 'fg/val/',
    data_prefix=dict(img='images', seg='masks'),
    test_mode=True,
    pipeline=[
        dict(type='LoadImageFromFile'), shapes_resize,
        dict(type='LoadForegroundMask'),
        dict(type='ClassNamesToTexts', task='foreground'),
        dict(type='PackMQInputs')
    ])
shapes_panoptic_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=shapes_root + 'annotations/panoptic_val.json',
    seg_prefix=shapes_root + 'annotations/panoptic_val/')
shapes_panoptic_calib_evaluator = dict(
    type='CocoPanopticMetric',
    ann_file=shapes_root + 'annotations/panoptic_calib.json',
    seg_prefix=shapes_root + 'annotations/panoptic_calib/')
shapes_instance_evaluator = dict(
    type='CocoMetric',
    ann_file=shapes_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'])
shapes_semantic_evaluator = dict(type='MQSemSegMetric', iou_metrics=['mIoU'],
                                 label_offset=1)  # saved PNGs: ADE ids
shapes_referring_evaluator = dict(type='MQRefSegMetric', metric=['cIoU', 'mIoU'])
shapes_foreground_evaluator = dict(type='ForegroundMetric')

# ADE20K semantic (ADE-SS, 150 classes): one mask per present class.
#   data/ade/ADEChallengeData2016/images/{training,validation}/*.jpg
#   data/ade/ADEChallengeData2016/annotations/{training,validation}/*.png
ade_root = 'data/ade/ADEChallengeData2016/'
ade_semantic_train = dict(
    type='ADE20KSegDataset',
    data_root=ade_root,
    data_prefix=dict(img_path='images/training',
                     seg_map_path='annotations/training'),
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=False, with_label=False,
             with_seg=True, reduce_zero_label=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
             keep_ratio=True),
        dict(type='RandomCrop', crop_size=(512, 512), crop_type='absolute'),
        dict(type='SemanticToInstances'),
        dict(type='ClassNamesToTexts', num_negatives=-1, task='semantic'),
        dict(type='PackMQInputs')
    ])
ade_semantic_val = dict(
    type='ADE20KSegDataset',
    data_root=ade_root,
    data_prefix=dict(img_path='images/validation',
                     seg_map_path='annotations/validation'),
    test_mode=True,
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, 512), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=False, with_label=False,
             with_seg=True, reduce_zero_label=True),
        dict(type='SemanticToInstances'),
        dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
             task='semantic'),
        dict(type='PackMQInputs')
    ])
# output_dir PNGs in the ADE server's ids (class + 1, 0 = other)
ade_semantic_evaluator = dict(
    type='MQSemSegMetric', iou_metrics=['mIoU'], label_offset=1)

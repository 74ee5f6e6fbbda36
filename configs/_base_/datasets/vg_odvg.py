# Visual Genome region descriptions as ODVG grounding jsonl (boxes + phrases).
#   data/vg/VG_100K/*.jpg, data/vg/vg_odvg.jsonl (mmdet's goldg/vg converters)
vg_root = 'data/vg/'
vg_train = dict(
    type='ODVGDataset',
    data_root=vg_root,
    ann_file='vg_odvg.jsonl',
    data_prefix=dict(img='VG_100K/'),
    filter_cfg=dict(filter_empty_gt=True),
    return_classes=True,
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomFlipPhrases', prob=0.5),  # left <-> right in text
        dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
        dict(type='PhrasesToTexts', task='grounding', max_texts=60),
        dict(type='PackMQInputs')
    ])

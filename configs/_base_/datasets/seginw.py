# Segmentation in the Wild: 25 COCO-format sets, each with its own vocabulary,
# mask AP per set and their unweighted mean (batch size 1 per GPU).
#   data/seginw/<Set>/{train,valid}/ + _annotations_min1cat.coco.json
seginw_root = 'data/seginw/'
seginw_sets = [
    'Airplane-Parts', 'Bottles', 'Brain-Tumor', 'Chicken', 'Cows',
    'Electric-Shaver', 'Elephants', 'Fruits', 'Garbage', 'Ginger-Garlic',
    'Hand', 'Hand-Metal', 'House-Parts', 'HouseHold-Items', 'Nutterfly-Squireel',
    'Phones', 'Poles', 'Puppies', 'Rail', 'Salmon-Fillet', 'Strawberry',
    'Tablets', 'Toolkits', 'Trash', 'Watermelon'
]
seginw_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='ClassNamesToTexts', num_negatives=-1, shuffle=False,
         task='instance'),
    dict(type='PackMQInputs')
]
seginw_val = dict(
    type='ConcatDataset',
    datasets=[
        dict(type='CocoTextDataset',
             data_root=seginw_root + name + '/',
             ann_file='valid/_annotations_min1cat.coco.json',
             data_prefix=dict(img='valid/'),
             test_mode=True,
             return_classes=True,
             pipeline=seginw_test_pipeline) for name in seginw_sets
    ])
seginw_evaluator = dict(
    type='SeginWEvaluator',
    metrics=[
        dict(type='CocoMetric',
             ann_file=seginw_root + name +
             '/valid/_annotations_min1cat.coco.json',
             metric=['segm']) for name in seginw_sets
    ],
    dataset_prefixes=seginw_sets)

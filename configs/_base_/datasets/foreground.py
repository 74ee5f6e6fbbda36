# Foreground / salient-object sets: an image folder and a mask folder each.
#   data/HRSOD/{train,test}/{images,masks}, data/UHRSD/{train,test}/{images,masks},
#   data/DUTS/DUTS-TR/{images,masks}, data/DIS5K/DIS-TR/{images,masks}
fg_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadForegroundMask'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='ClassNamesToTexts', task='foreground'),
    dict(type='PackMQInputs')
]
fg_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='LoadForegroundMask'),
    dict(type='ClassNamesToTexts', task='foreground'),
    dict(type='PackMQInputs')
]
hrsod_train = dict(type='ForegroundDataset', data_root='data/HRSOD/train/',
                   data_prefix=dict(img='images', seg='masks'),
                   pipeline=fg_train_pipeline)
uhrsd_train = dict(type='ForegroundDataset', data_root='data/UHRSD/train/',
                   data_prefix=dict(img='images', seg='masks'),
                   pipeline=fg_train_pipeline)
duts_train = dict(type='ForegroundDataset', data_root='data/DUTS/DUTS-TR/',
                  data_prefix=dict(img='images', seg='masks'),
                  pipeline=fg_train_pipeline)
dis_train = dict(type='ForegroundDataset', data_root='data/DIS5K/DIS-TR/',
                 data_prefix=dict(img='images', seg='masks'),
                 pipeline=fg_train_pipeline)
hrsod_test = dict(type='ForegroundDataset', data_root='data/HRSOD/test/',
                  data_prefix=dict(img='images', seg='masks'),
                  test_mode=True, pipeline=fg_test_pipeline)
uhrsd_test = dict(type='ForegroundDataset', data_root='data/UHRSD/test/',
                  data_prefix=dict(img='images', seg='masks'),
                  test_mode=True, pipeline=fg_test_pipeline)
fg_evaluator = dict(type='ForegroundMetric')

# Foreground segmentation sets (HRSOD + UHRSD + DUTS + DIS) with COCO-PS.
_base_ = [
    './mqformer_r50_8xb2-50e_coco-ps.py', '../_base_/datasets/foreground.py'
]
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # metainfo differs across the mixed datasets (and mmdet's check fails
        # on keys the first dataset lacks); evaluation uses its own datasets
        ignore_keys=[
            'classes', 'thing_classes', 'stuff_classes', 'palette',
            'label_map', 'reduce_zero_label'
        ],
        datasets=[{{_base_.coco_panoptic_train}}, {{_base_.hrsod_train}},
                  {{_base_.uhrsd_train}}, {{_base_.duts_train}},
                  {{_base_.dis_train}}]))

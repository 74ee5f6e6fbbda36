# Table 2, row "COCO-PS + ADE-SS": two datasets, two tasks, one model.
_base_ = [
    './mqformer_r50_8xb2-50e_coco-ps.py',
    '../_base_/datasets/ade20k_semantic.py'
]
train_dataloader = dict(
    sampler=dict(_delete_=True, type='MultiDataSampler',
                 dataset_ratio=[1, 1]),
    batch_sampler=dict(_delete_=True, type='MultiDataAspectRatioBatchSampler',
                       batch_size=[2, 2], num_datasets=2),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # metainfo differs across the mixed datasets (and mmdet's check fails
        # on keys the first dataset lacks); evaluation uses its own datasets
        ignore_keys=[
            'classes', 'thing_classes', 'stuff_classes', 'palette',
            'label_map', 'reduce_zero_label'
        ],
        datasets=[{{_base_.coco_panoptic_train}},
                  {{_base_.ade_semantic_train}}]))

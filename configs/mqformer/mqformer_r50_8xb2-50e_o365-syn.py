# Objects365 with synthetic SAM masks and synthetic captions (paper 3.4),
# plus COCO-PS: detection data turned into segmentation and referring data.
_base_ = [
    './mqformer_r50_8xb2-50e_coco-ps.py', '../_base_/datasets/objects365.py'
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
        datasets=[{{_base_.coco_panoptic_train}},
                  {{_base_.o365_syn_m_train}},
                  {{_base_.o365_syn_caption_train}}]))

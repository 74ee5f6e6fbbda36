# Table 2, row "COCO-PS + ADE-SS + VG + refer": four datasets of four tasks
# (panoptic, semantic, grounding boxes, referring) in one training mix.
_base_ = [
    './mqformer_r50_8xb2-50e_coco-ps.py',
    '../_base_/datasets/ade20k_semantic.py', '../_base_/datasets/vg_odvg.py',
    '../_base_/datasets/refcoco.py', '../_base_/datasets/refcoco+.py',
    '../_base_/datasets/refcocog.py'
]
# RefCocoDataset has no width/height, so a plain (not aspect-ratio) sampler
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
        datasets=[
            # RefCOCO/+/g val/test images are COCO train images: keep them
            # out of the COCO training set (standard for referring; the
            # number removed is logged)
            dict(
                type='ExcludeImages',
                dataset={{_base_.coco_panoptic_train}},
                ref_files=[
                    'data/coco/refcoco/refs(unc).p',
                    'data/coco/refcoco+/refs(unc).p',
                    'data/coco/refcocog/refs(umd).p'
                ]),
                  {{_base_.ade_semantic_train}}, {{_base_.vg_train}},
                  {{_base_.refcoco_train}}, {{_base_.refcoco_plus_train}},
                  {{_base_.refcocog_train}}]))

# The fair reference for the demo: mmdet's own Mask2Former (its COCO panoptic
# config) built at MQ-Former tiny's size and trained as it is: the same
# backbone (ResNet-18 at a quarter width), 64-d, 2 encoder and 3 decoder
# layers, 30 queries, 1024 points, the same attention paths (FastAttention),
# optimizer, clipping, batch, padding, data and augmentation (160 px, flip).
# What differs is the method (queries, matching, losses, denoising).
# Post-processing thresholds: chosen on the calibration images
# (tools/analysis_tools/calibrate_thresholds.py), never on the test images.
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py']
custom_imports = dict(imports=['mqformer'], allow_failed_imports=False)
data_root = 'data/shapes_world/'
things = [
    f'{c} {s}'
    for c in ('red', 'green', 'blue', 'yellow', 'purple', 'orange')
    for s in ('circle', 'square', 'triangle')
]
stuff = ['sky', 'grass', 'water', 'road']
metainfo = dict(classes=things + stuff, thing_classes=things,
                stuff_classes=stuff)
num_things_classes, num_stuff_classes = len(things), len(stuff)
num_classes = num_things_classes + num_stuff_classes
image_size = (160, 160)
dims = 64
model = dict(
    type='FastAttention',  # our attention paths, applied at build
    model_type='Mask2Former',
    # padded to a multiple of 32, as MQ-Former (no fixed-size LSJ pad)
    data_preprocessor=dict(batch_augments=None),
    backbone=dict(depth=18, base_channels=16, frozen_stages=-1,
                  init_cfg=None, norm_cfg=dict(type='BN', requires_grad=True),
                  norm_eval=False),
    panoptic_head=dict(
        in_channels=[16, 32, 64, 128],
        feat_channels=dims,
        out_channels=dims,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=30,
        pixel_decoder=dict(
            norm_cfg=dict(type='GN', num_groups=16),
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=dims, num_heads=4),
                    ffn_cfg=dict(embed_dims=dims, feedforward_channels=128))),
            positional_encoding=dict(num_feats=dims // 2)),
        positional_encoding=dict(num_feats=dims // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=dims, num_heads=4),
                cross_attn_cfg=dict(embed_dims=dims, num_heads=4),
                ffn_cfg=dict(embed_dims=dims, feedforward_channels=128))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_things_classes,
                              num_stuff_classes=num_stuff_classes),
    train_cfg=dict(num_points=1024),
    # mmdet's key is max_per_image (the top-k instances); as our eval config
    test_cfg=dict(panoptic_on=True, instance_on=True, max_per_image=100))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadPanopticAnnotations'),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # as MQ-Former's
    dataset=dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
# the test images: the world's val split; thresholds are chosen on the
# calibration split (val_dataloader; calibrate_thresholds.py)
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        pipeline=test_pipeline))
test_evaluator = [
    dict(type='CocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'annotations/panoptic_val/'),
    dict(type='CocoMetric',
         ann_file=data_root + 'annotations/instances_val.json',
         metric=['bbox', 'segm'])
]
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root, metainfo=metainfo,
        ann_file='annotations/panoptic_calib.json',
        data_prefix=dict(img='calib/', seg='annotations/panoptic_calib/'),
        pipeline=test_pipeline))
val_evaluator = [
    dict(type='CocoPanopticMetric',
         ann_file=data_root + 'annotations/panoptic_calib.json',
         seg_prefix=data_root + 'annotations/panoptic_calib/')
]
max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
# MQ-Former tiny's optimizer and clipping (mmdet's Mask2Former: lr 1e-4,
# backbone x0.1, clip 0.01)
optim_wrapper = dict(
    _delete_=True,
    type='NonFiniteGuardOptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, milestones=[500], gamma=0.1)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=4)

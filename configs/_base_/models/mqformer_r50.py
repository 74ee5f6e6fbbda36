# MQ-Former, ResNet-50, 100 learnable + 300 conditional queries (the paper's
# setting), CLIP text encoder. Query mode: model.query_mode in
# {'mixed', 'learnable', 'conditional'}.
embed_dims = 256
num_levels = 4  # 3 backbone levels (1/8-1/32) + 1 extra (1/64)
num_decoder_layers = 9
model = dict(
    type='MQFormer',
    query_mode='mixed',
    num_learnable_queries=100,
    num_conditional_queries=300,
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        # MQHead pads masks itself; detection-only samples have none
        pad_mask=False),
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    encoder=dict(
        type='MQSegEncoder',
        in_channels=[256, 512, 1024, 2048],
        strides=[4, 8, 16, 32],
        num_extra_levels=1,
        feat_channels=embed_dims,
        out_channels=embed_dims,
        norm_cfg=dict(type='GN', num_groups=32),
        act_cfg=dict(type='ReLU'),
        encoder=dict(
            num_layers=6,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=embed_dims,
                    num_heads=8,
                    num_levels=num_levels,
                    num_points=4,
                    dropout=0.0,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=embed_dims,
                    feedforward_channels=1024,
                    num_fcs=2,
                    ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True)))),
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True)),
    decoder=dict(
        type='MixedQueryDecoder',
        num_layers=num_decoder_layers,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=8,
                dropout=0.0,
                batch_first=True),
            dual_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=8,
                dropout=0.0,
                batch_first=True),
            cross_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=8,
                num_levels=num_levels,
                num_points=4,
                dropout=0.0,
                batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims,
                feedforward_channels=2048,
                ffn_drop=0.0)),
        post_norm_cfg=None),
    text_encoder=dict(
        type='HFTextEncoder',
        model_name_or_path='openai/clip-vit-base-patch32',
        model_type='clip',
        frozen=True,
        templates='default'),
    bbox_head=dict(
        type='MQHead',
        num_decoder_layers=num_decoder_layers,
        embed_dims=embed_dims,
        num_points=12544,
        # masks of the first 2 denoising groups (boxes and classes: all);
        # with few objects per image DINO's dynamic groups make up to 50
        num_dn_mask_groups=2,
        # cosine text logits with a learnable scale (CLIP / X-Decoder)
        logit_scale=1 / 0.07,
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=4.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0),
        loss_mask=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='mean',
            loss_weight=5.0),
        loss_dice=dict(
            type='DiceLoss',
            use_sigmoid=True,
            activate=True,
            reduction='mean',
            naive_dice=True,
            eps=1.0,
            loss_weight=5.0)),
    dn_cfg=dict(
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=100)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=4.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0),
                # mmdet's sigmoid CrossEntropyLossCost, same value, ~4x cheaper
                dict(type='BinaryCrossEntropyLossCost', weight=5.0),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ])),
    # instances get the boxes of their predicted masks (Mask2Former's boxes):
    # +2 to +5 box AP over the box head's on three tiny checkpoints
    # (docs/quality_per_cpu_minute.md); detection-only outputs keep the head's
    test_cfg=dict(max_per_img=100, box_source='mask'))

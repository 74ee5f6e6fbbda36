# MQ-Former with Swin-L (ImageNet-22K, 384).
_base_ = './mqformer_swin-t_8xb2-50e_coco-instance.py'
pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa
model = dict(
    backbone=dict(
        pretrain_img_size=384,
        embed_dims=192,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    encoder=dict(in_channels=[192, 384, 768, 1536]))

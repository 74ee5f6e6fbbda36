# MQ-Former's encoder/decoder/head on another mmdet backbone + neck: a small
# Swin transformer whose levels a ChannelMapper maps to one width.
_base_ = './mqformer_tiny_shapes-instance.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=24,
        depths=[1, 1, 2, 1],
        num_heads=[1, 2, 3, 4],
        window_size=5,
        mlp_ratio=2,
        qkv_bias=True,
        drop_path_rate=0.1,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        convert_weights=False,
        init_cfg=None),
    neck=dict(
        type='ChannelMapper',
        in_channels=[24, 48, 96, 192],
        kernel_size=1,
        out_channels=32,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=16),
        num_outs=4),
    encoder=dict(in_channels=[32, 32, 32, 32]))

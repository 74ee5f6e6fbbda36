"""MQ-Former parts reused outside MQFormer, by config alone."""
import math

import pytest
import torch

from conftest import REPO, tiny_cfg


def test_decoder_and_head_build_from_dicts_and_run_on_tensors():
    import mqformer  # noqa: F401
    from mmdet.registry import MODELS
    C, B, N, T, L = 32, 2, 7, 5, 2
    decoder = MODELS.build(dict(
        type='MixedQueryDecoder', num_layers=L, return_intermediate=True,
        query_mode='mixed',
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=C, num_heads=2, batch_first=True),
            cross_attn_cfg=dict(embed_dims=C, num_heads=2, num_levels=2,
                                batch_first=True),
            ffn_cfg=dict(embed_dims=C, feedforward_channels=64))))
    head = MODELS.build(dict(type='MQHead', num_decoder_layers=L,
                             embed_dims=C, num_points=64))
    head.init_weights()
    shapes = torch.tensor([[8, 8], [4, 4]])
    hidden, refs = decoder(
        query=torch.randn(B, N, C), value=torch.randn(B, 80, C),
        reference_points=torch.rand(B, N, 4),
        spatial_shapes=shapes, level_start_index=torch.tensor([0, 64]),
        valid_ratios=torch.ones(B, 2, 2), reg_branches=head.reg_branches,
        query_split=(0, 4, 3))
    assert hidden.shape == (L, B, N, C) and refs.shape == (L + 1, B, N, 4)
    cls, boxes, masks = head(hidden, refs, torch.randn(B, C, 16, 16),
                             torch.randn(B, T, C))
    assert cls.shape == (L, B, N, T)
    assert masks.shape == (L, B, N, 16, 16)


def test_swin_with_channel_mapper_trains(tmp_path, shapes_root):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = tiny_cfg(shapes_root, tmp_path)
    swin = Config.fromfile(
        f'{REPO}/configs/mqformer/mqformer_tiny-swin-chmap_shapes-instance.py')
    cfg.model.backbone = swin.model.backbone
    cfg.model.neck = swin.model.neck
    cfg.model.encoder.in_channels = swin.model.encoder.in_channels
    cfg.train_cfg.max_iters = 3
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint.interval = 100
    runner = Runner.from_cfg(cfg)
    assert type(runner.model.backbone).__name__ == 'SwinTransformer'
    assert type(runner.model.neck).__name__ == 'ChannelMapper'
    runner.train()
    assert runner.iter == 3
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())

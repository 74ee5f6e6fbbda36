"""MQ-Former parts reused outside MQFormer, by config alone."""
import copy
import math

import pytest
import torch

from conftest import REPO, tiny_cfg


def test_decoder_and_head_build_from_dicts_and_run_on_tensors():
    import mqformer  # noqa: F401
    from mmdet.registry import MODELS

    from mqformer.models.layers import QuerySplit
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
        query_split=QuerySplit(0, 4, 3))
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


def test_cpu_deformable_attention_equals_mmcv_and_converts_any_model():
    """Our CPU deformable attention gives mmcv's outputs and gradients (odd
    level sizes, samples outside the map), and converts the mmcv modules of
    an mmdet model (Mask2Former's pixel decoder) and of MQ-Former in place
    without changing their weights."""
    import copy

    from mmcv.ops import MultiScaleDeformableAttention
    from mmcv.ops.multi_scale_deform_attn import \
        multi_scale_deformable_attn_pytorch
    from mqformer.models.layers import (CPUMultiScaleDeformableAttention,
                                        multi_scale_deformable_attn_cpu,
                                        use_cpu_deformable_attention)
    torch.manual_seed(0)
    shapes = torch.tensor([[9, 7], [5, 4], [2, 3]])
    S, B, Q, H, D, L, P = int(shapes.prod(1).sum()), 2, 11, 2, 4, 3, 4
    value = torch.randn(B, S, H, D, requires_grad=True)
    loc = (torch.rand(B, Q, H, L, P, 2) * 1.4 - 0.2).requires_grad_()
    w = torch.rand(B, Q, H, L, P, requires_grad=True)
    outs, grads = [], []
    for fn in (multi_scale_deformable_attn_pytorch,
               multi_scale_deformable_attn_cpu):
        out = fn(value, shapes, loc, w)
        outs.append(out)
        grads.append(torch.autograd.grad((out * out).sum(),
                                         (value, loc, w)))
    assert outs[1].shape == (B, Q, H * D)
    torch.testing.assert_close(outs[1], outs[0])
    for g_ours, g_ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_ours, g_ref)

    attn = MultiScaleDeformableAttention(embed_dims=8, num_heads=2,
                                         num_levels=3, batch_first=True,
                                         dropout=0.0)
    ref = copy.deepcopy(attn)
    holder = torch.nn.Sequential(attn)
    assert use_cpu_deformable_attention(holder) == 1
    assert type(holder[0]) is CPUMultiScaleDeformableAttention
    assert use_cpu_deformable_attention(holder) == 0
    kw = dict(query=torch.randn(B, Q, 8), value=torch.randn(B, S, 8),
              reference_points=torch.rand(B, Q, 3, 2), spatial_shapes=shapes,
              level_start_index=torch.cat([shapes.new_zeros(1),
                                           shapes.prod(1).cumsum(0)[:-1]]))
    torch.testing.assert_close(holder[0](**kw), ref(**kw))
    boxes = dict(kw, reference_points=torch.rand(B, Q, 3, 4))
    torch.testing.assert_close(holder[0](**boxes), ref(**boxes))
    # ours never goes through mmcv's module-level function
    import mmcv.ops.multi_scale_deform_attn as mmcv_msda

    def refuse(*args):
        raise AssertionError('the module-level function was used')
    expected = ref(**kw)
    mmcv_msda.multi_scale_deformable_attn_pytorch = refuse
    try:
        torch.testing.assert_close(holder[0](**kw), expected)
        with pytest.raises(AssertionError, match='module-level'):
            ref(**kw)
    finally:
        mmcv_msda.multi_scale_deformable_attn_pytorch = \
            multi_scale_deformable_attn_pytorch

    from mmengine.config import Config
    from mmdet.registry import MODELS
    m2f_cfg = Config.fromfile(f'{REPO}/configs/baselines/'
                              'mask2former_tiny_shapes-panoptic.py')
    decoder = MODELS.build(m2f_cfg.model.panoptic_head.pixel_decoder)
    keys = list(decoder.state_dict())
    n = use_cpu_deformable_attention(decoder)
    assert n == m2f_cfg.model.panoptic_head.pixel_decoder.encoder.num_layers
    assert list(decoder.state_dict()) == keys

    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    model = MODELS.build(tiny_cfg().model)
    kinds = {type(m) for m in model.modules()}
    assert CPUMultiScaleDeformableAttention in kinds
    assert MultiScaleDeformableAttention not in kinds


def test_stock_and_converted_attention_in_two_threads():
    """A stock mmcv module and a converted one, run by two threads at once,
    each give its single-threaded output every time."""
    import threading

    from mmcv.ops import MultiScaleDeformableAttention

    from mqformer.models.layers.deformable_attention import \
        use_cpu_deformable_attention
    torch.manual_seed(0)
    stock = MultiScaleDeformableAttention(embed_dims=8, num_heads=2,
                                          num_levels=2,
                                          batch_first=True).eval()
    ours = copy.deepcopy(stock)
    use_cpu_deformable_attention(torch.nn.Sequential(ours))
    shapes = torch.tensor([[6, 5], [3, 3]])
    kw = dict(query=torch.randn(2, 7, 8), value=torch.randn(2, 39, 8),
              reference_points=torch.rand(2, 7, 2, 2), spatial_shapes=shapes,
              level_start_index=torch.tensor([0, 30]))
    with torch.no_grad():
        want = {m: m(**kw) for m in (stock, ours)}
    bad = []

    def run(m):
        with torch.no_grad():
            for _ in range(200):
                if not torch.equal(m(**kw), want[m]):
                    bad.append(type(m).__name__)
    threads = [threading.Thread(target=run, args=(m, ))
               for m in (stock, ours)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
    torch.testing.assert_close(want[ours], want[stock])


@pytest.mark.parametrize('batch_first', [True, False])
def test_sdpa_attention_equals_mmcv_and_keeps_no_softmax(batch_first):
    """mmcv's MultiheadAttention with our inner module gives its outputs and
    gradients (a denoising-style attention mask, padded keys), keeps no
    (heads, Q, K) softmax for the backward pass, and converts Mask2Former's
    decoder and MQ-Former's decoder in place without changing weights."""
    import copy

    from mmcv.cnn.bricks.transformer import MultiheadAttention
    from mqformer.models.layers import (SDPAMultiheadAttention,
                                        use_sdpa_attention)
    torch.manual_seed(0)
    B, Q, K, C, H = 2, 12, 9, 16, 4
    ref = MultiheadAttention(C, H, batch_first=batch_first)
    ours = torch.nn.Sequential(copy.deepcopy(ref))
    assert use_sdpa_attention(ours) == 1
    assert type(ours[0].attn) is SDPAMultiheadAttention
    assert use_sdpa_attention(ours) == 0
    assert list(ours.state_dict()) == ['0.' + k for k in ref.state_dict()]

    def inputs():
        q = torch.randn(B, Q, C) if batch_first else torch.randn(Q, B, C)
        kv = torch.randn(B, K, C) if batch_first else torch.randn(K, B, C)
        return q.requires_grad_(), kv.requires_grad_()
    q, kv = inputs()
    attn_mask = torch.rand(Q, K) > 0.6
    attn_mask[:, 0] = False  # every query sees one key
    pad = torch.zeros(B, K, dtype=torch.bool)
    pad[1, -3:] = True
    outs, grads, saved = [], [], []
    for m in (ref, ours[0]):
        sizes = []

        def pack(t, sizes=sizes):
            sizes.append(tuple(t.shape))
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = m(q, kv, kv, attn_mask=attn_mask, key_padding_mask=pad)
        outs.append(out)
        grads.append(torch.autograd.grad((out * out).sum(),
                                         [q, kv, *m.parameters()]))
        saved.append(sizes)
    torch.testing.assert_close(outs[1], outs[0])
    for g_ours, g_ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(g_ours, g_ref)
    softmax = (B * H, Q, K)
    assert softmax in saved[0]
    assert softmax not in saved[1]

    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    m2f_cfg = Config.fromfile(f'{REPO}/configs/baselines/'
                              'mask2former_tiny_shapes-panoptic.py')
    from mmdet.models.layers import Mask2FormerTransformerDecoder
    decoder = Mask2FormerTransformerDecoder(
        **m2f_cfg.model.panoptic_head.transformer_decoder)
    keys = list(decoder.state_dict())
    # self- and cross-attention in every layer
    assert use_sdpa_attention(decoder) == 2 * decoder.num_layers
    assert list(decoder.state_dict()) == keys

    model = MODELS.build(tiny_cfg().model)
    inner = [m.attn for m in model.modules()
             if isinstance(m, MultiheadAttention)]
    assert inner and all(type(a) is SDPAMultiheadAttention for a in inner)

"""Mask2Former's masked attention for the learnable queries: the mask comes
from each query's current mask, blocks padding, never blocks a whole row, and
the attention reads nothing outside it; conditional queries are untouched."""
import pytest
import torch
from torch import nn

from conftest import tiny_cfg

MASKED = dict(embed_dims=64, num_heads=4, dropout=0.0, batch_first=True)


class FixedEmbeds(nn.Module):
    """A mask branch that ignores its input: (B, N, C) -> the given embeds."""

    def __init__(self, embeds):
        super().__init__()
        self.embeds = embeds

    def forward(self, x):
        return self.embeds.expand(x.size(0), -1, -1)


def decoder(query_mode='mixed'):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = dict(tiny_cfg().model.decoder)
    cfg['layer_cfg'] = dict(cfg['layer_cfg'], masked_attn_cfg=MASKED)
    torch.manual_seed(0)
    return MODELS.build(dict(cfg, query_mode=query_mode)).eval()


def test_attention_mask_follows_each_querys_mask():
    """Query 0's mask is the left half, query 1's is empty; the last image
    column is padding. Query 0 reads its half minus padding; query 1 reads
    the whole valid area; every row keeps one readable key at least."""
    dec = decoder()
    C, h, w = 64, 4, 6
    feats = torch.zeros(1, C, 8, 12)
    feats[:, 0, :, :6] = 1.0  # channel 0: left half of the image
    feats[:, 1] = 1.0  # channel 1: everywhere
    embeds = torch.zeros(1, 2, C)
    embeds[0, 0, 0], embeds[0, 0, 1] = 10.0, -5.0  # +5 left, -5 right
    embeds[0, 1, 1] = -5.0  # -5 everywhere
    pad = torch.zeros(1, h, w, dtype=torch.bool)
    pad[..., -1] = True
    blocked = dec.learnable_attn_mask(
        torch.zeros(1, 2, C), feats, FixedEmbeds(embeds), (h, w),
        pad.flatten(1), num_heads=4)
    assert blocked.shape == (4, 2, h * w)
    assert (blocked[0] == blocked[3]).all()  # the same for every head
    b = blocked[0].view(2, h, w)
    assert not b[0, :, :3].any() and b[0, :, 3:].all()
    assert (b[1] == pad[0]).all()  # empty mask: the valid area
    assert not blocked.all(-1).any()


def test_masked_attention_reads_only_inside_the_mask():
    """Changing memory where a learnable query's mask is blocked leaves its
    output as it was; inside the mask it moves. Denoising and conditional
    queries pass through the block unchanged."""
    layer = decoder().layers[0]
    from mqformer.models.layers import QuerySplit
    split = QuerySplit(2, 3, 2)
    torch.manual_seed(1)
    query, pos = torch.randn(1, 7, 64), torch.randn(1, 7, 64)
    memory = torch.randn(1, 10, 64)
    blocked = torch.zeros(1, 2, 10, dtype=torch.bool)
    blocked[0, 0, 5:] = True  # query 0 reads keys 0..4
    blocked[0, 1, :5] = True  # query 1 reads keys 5..9
    blocked = blocked.repeat_interleave(4, 0)
    with torch.no_grad():
        out = layer.learnable_masked_attn(query, pos, split, memory, blocked)
        moved = memory.clone()
        moved[:, 5:] += torch.randn(1, 5, 64)
        out2 = layer.learnable_masked_attn(query, pos, split, moved, blocked)
    assert torch.equal(out[:, :5], query[:, :5])
    assert not torch.allclose(out[:, 5:], query[:, 5:])
    assert torch.allclose(out[:, 5], out2[:, 5], atol=1e-6)
    assert (out[:, 6] - out2[:, 6]).abs().max() > 1e-3


@pytest.mark.parametrize('mode', ['mixed', 'learnable', 'conditional'])
def test_masked_attention_only_where_there_are_learnable_queries(mode):
    dec = decoder(mode)
    assert all(l.with_masked_attn == (mode != 'conditional')
               for l in dec.layers)


def test_decoder_reads_one_level_per_layer_coarse_first():
    """Layer i reads memory level i % num_levels (coarse first): the level's
    slice of the memory and a mask at its size."""
    dec = decoder()
    shapes = torch.tensor([[2, 3], [4, 6], [8, 12]])
    start = torch.tensor([0, 6, 30])
    memory = torch.randn(1, 126, 64)
    feats = torch.randn(1, 64, 16, 24)
    branch = FixedEmbeds(torch.randn(1, 5, 64))
    for lid in range(4):
        out = dec.learnable_attn_inputs(lid, torch.randn(1, 5, 64), memory,
                                        shapes, start, None, feats, branch, 4)
        h, w = shapes[lid % 3].tolist()
        s = int(start[lid % 3])
        assert torch.equal(out['level_memory'], memory[:, s:s + h * w])
        assert out['level_attn_mask'].shape == (4, 5, h * w)


def test_masked_attention_without_mask_features_is_an_error():
    from mmdet.models.layers.transformer.utils import MLP

    from mqformer.models.layers import QuerySplit
    dec = decoder()
    kw = dict(query=torch.randn(1, 5, 64), value=torch.randn(1, 21, 64),
              reference_points=torch.rand(1, 5, 4),
              spatial_shapes=torch.tensor([[1, 1], [2, 2], [4, 4]]),
              level_start_index=torch.tensor([0, 1, 5]),
              valid_ratios=torch.ones(1, 3, 2),
              reg_branches=nn.ModuleList(
                  [MLP(64, 64, 4, 2) for _ in dec.layers]),
              query_split=QuerySplit(0, 3, 2))
    with pytest.raises(ValueError, match='masked_attn_cfg'):
        dec(**kw)
    hidden, _ = dec(**kw, mask_features=torch.randn(1, 64, 16, 16),
                    mask_branch=MLP(64, 64, 64, 3))
    assert hidden.shape == (3, 1, 5, 64)


@pytest.mark.parametrize('mode', ['mixed', 'learnable'])
def test_model_with_masked_attention_trains_every_parameter(mode):
    """In the whole model on a padded batch of two sizes: every parameter
    (the masked attention's included) gets a gradient, as DDP needs."""
    import copy

    from mmdet.registry import MODELS
    from mqformer.testing import ShapesWorld, make_batch
    cfg = tiny_cfg()
    cfg.model.query_mode = mode
    cfg.model.decoder.layer_cfg.masked_attn_cfg = MASKED
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(copy.deepcopy(make_batch(
        ShapesWorld(seed=0), sizes=((64, 96), (128, 128)))), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    unused = [n for n, p in model.named_parameters()
              if p.requires_grad and p.grad is None]
    assert unused == []
    assert model.decoder.layers[0].masked_attn.attn.in_proj_weight.grad \
        .abs().sum() > 0

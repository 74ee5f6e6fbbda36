"""The plugin installs, registers its components and loads its configs."""
import glob
import os.path as osp

import pytest
import torch

from conftest import REPO


def test_package_imports_with_version():
    import mqformer
    assert mqformer.__version__ == open(
        osp.join(REPO, 'mqformer', 'version.py')).read().split("'")[1]


COMPONENTS = [
    ('MODELS', 'MQFormer'),
    ('MODELS', 'MQSegEncoder'),
    ('MODELS', 'MixedQueryDecoder'),
    ('MODELS', 'MixedQueryDecoderLayer'),
    ('MODELS', 'MQHead'),
    ('MODELS', 'HFTextEncoder'),
    ('MODELS', 'OpenVocabCdnQueryGenerator'),
    ('TRANSFORMS', 'ClassNamesToTexts'),
    ('TRANSFORMS', 'PackMQInputs'),
]


@pytest.mark.parametrize('registry,name', COMPONENTS)
def test_components_resolve_through_custom_imports(registry, name):
    """What a config with custom_imports=['mqformer'] sees in mmdet's scope."""
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings
    import mmdet.registry as regs
    cfg = Config(dict(custom_imports=dict(imports=['mqformer'],
                                          allow_failed_imports=False)))
    import_modules_from_strings(**cfg.custom_imports)
    reg = getattr(regs, registry)
    assert reg.scope == 'mmdet'
    assert reg.get(name) is not None, f'{name} is not in mmdet.{registry}'


CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                           recursive=True))


def test_there_are_configs():
    assert len([c for c in CONFIGS if '/_base_/' not in c]) >= 5


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(c, REPO) for c in CONFIGS])
def test_config_loads(path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if '/_base_/' not in path:
        assert cfg.default_scope == 'mmdet'
        assert 'mqformer' in cfg.custom_imports['imports']
        expected = 'Mask2Former' if '/baselines/' in path else 'MQFormer'
        model_type = cfg.model.type
        if model_type == 'FastAttention':  # a peer built with our kernels
            model_type = cfg.model.model_type
        assert model_type == expected


def test_mmcv_msda_cpu_matches_pytorch_reference():
    """mmcv's MultiScaleDeformableAttention (from the built mmcv.ops) on CPU
    equals its projections around ``multi_scale_deformable_attn_pytorch``."""
    from mmcv.ops import MultiScaleDeformableAttention
    from mmcv.ops.multi_scale_deform_attn import \
        multi_scale_deformable_attn_pytorch
    torch.manual_seed(0)
    shapes = torch.tensor([[6, 4], [3, 2]])
    start = torch.tensor([0, 24])
    bs, heads, levels, pts, C, q = 2, 2, 2, 3, 16, 5
    attn = MultiScaleDeformableAttention(
        embed_dims=C, num_heads=heads, num_levels=levels, num_points=pts,
        batch_first=True).eval()
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.5)
    query, value = torch.rand(bs, q, C), torch.rand(bs, 30, C)
    ref_pts = torch.rand(bs, q, levels, 2)
    out = attn(query, value=value, reference_points=ref_pts,
               spatial_shapes=shapes, level_start_index=start)

    v = attn.value_proj(value).view(bs, 30, heads, C // heads)
    off = attn.sampling_offsets(query).view(bs, q, heads, levels, pts, 2)
    w = attn.attention_weights(query).view(bs, q, heads, levels * pts)
    w = w.softmax(-1).view(bs, q, heads, levels, pts)
    norm = torch.stack([shapes[..., 1], shapes[..., 0]], -1)
    loc = ref_pts[:, :, None, :, None, :] + off / norm[None, None, None, :,
                                                       None, :]
    expected = attn.output_proj(
        multi_scale_deformable_attn_pytorch(v, shapes, loc, w)) + query
    assert out.shape == (bs, q, C)
    assert torch.allclose(out, expected, atol=1e-5)

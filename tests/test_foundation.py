"""The plugin installs, registers its components and loads its configs."""
import glob
import os.path as osp

import pytest
import torch

from conftest import REPO


def test_installed_package_is_this_checkout():
    """make's install put this checkout on the path (editable), with the
    version the package says."""
    import importlib.metadata

    import mqformer
    assert osp.dirname(osp.dirname(osp.abspath(mqformer.__file__))) == REPO
    assert importlib.metadata.version('mqformer') == mqformer.__version__


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


def test_every_config_the_docs_name_exists():
    import re
    docs = [osp.join(REPO, 'README.md')] + glob.glob(
        osp.join(REPO, 'docs', '*.md'))
    named = {m for d in docs
             for m in re.findall(r'configs/[\w/.-]+?\.py', open(d).read())}
    assert named  # the README names its configs
    missing = sorted(c for c in named if not osp.isfile(osp.join(REPO, c)))
    assert not missing, f'configs named in the docs but absent: {missing}'


def test_every_link_of_the_docs_resolves():
    """Relative links in the README and docs/ point at files of the repo
    (the README links its details to docs/)."""
    import re
    docs = [osp.join(REPO, 'README.md'), osp.join(
        REPO, 'benchmarks', 'README.md')] + glob.glob(
            osp.join(REPO, 'docs', '*.md'))
    broken, count = [], 0
    for d in docs:
        for target in re.findall(r'\]\(([^)#\s]+)[^)]*\)', open(d).read()):
            if target.startswith(('http:', 'https:', '../shared')):
                continue
            count += 1
            if not osp.exists(osp.join(osp.dirname(d), target)):
                broken.append(f'{osp.relpath(d, REPO)}: {target}')
    assert count >= 15  # the README's and the index's links were read
    assert not broken, f'broken links: {broken}'


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
        # an iteration-based loop over a finite sampler restarts the loader
        # each epoch, and mmengine sleeps 2 s at every restart (50
        # iterations of the shapes world: ~15% of a 10-minute budget)
        # (mmdet's MultiDataSampler, the fine-tuning replay, has no
        # infinite version)
        if cfg.get('train_cfg', {}).get('type') == 'IterBasedTrainLoop':
            assert cfg.train_dataloader.sampler.type in (
                'InfiniteSampler', 'MultiDataSampler')


def test_install_built_mmcv_ops():
    """tools/install.sh builds mmcv from source with its C++ ops: the ops
    our models and peers use load and run on the CPU."""
    from mmcv.ops import batched_nms
    from mmcv.utils import ext_loader
    ext = ext_loader.load_ext('_ext', ['ms_deform_attn_forward', 'nms'])
    assert ext.__file__.endswith('.so')
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [20., 20., 30., 30.]])
    _, keep = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]),
                          torch.zeros(3, dtype=torch.long),
                          dict(type='nms', iou_threshold=0.5))
    assert keep.tolist() == [0, 2]

"""The Table 2 training mixes build their datasets from generated fixtures
with only data roots overridden (as `--cfg-options` would)."""
import os.path as osp
import shutil

import pytest

from conftest import REPO
from mqformer.testing import (ShapesWorld, write_ade_semantic,
                              write_coco_panoptic, write_odvg, write_refcoco)


@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    r = tmp_path_factory.mktemp('table2')
    w = ShapesWorld(seed=11)
    write_coco_panoptic(str(r / 'coco'), w, 3, 'train2017')
    write_ade_semantic(str(r / 'ade'), w, 3, 'training')
    write_odvg(str(r / 'vg'), w, 3)
    write_refcoco(str(r / 'coco'), w, 3, splits=('train', ))
    for name, refs in (('refcoco+', 'refs(unc).p'), ('refcocog', 'refs(umd).p')):
        shutil.copytree(r / 'coco' / 'refcoco', r / 'coco' / name)
        shutil.copy(r / 'coco' / 'refcoco' / 'refs(unc).p',
                    r / 'coco' / name / refs)
    return r


@pytest.mark.parametrize('cfg_name,n', [
    ('mqformer_r50_8xb2-50e_coco-ps.py', 1),
    ('mqformer_r50_8xb2-50e_coco-ps_ade-ss.py', 2),
    ('mqformer_r50_8xb2-50e_coco-ps_ade-ss_vg_ref.py', 6),
])
def test_table2_mix_builds_from_fixtures(roots, cfg_name, n):
    import mqformer  # noqa: F401
    from mmengine.config import Config
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mqformer', cfg_name))
    ds_key = 'train_dataloader.dataset'
    w = ShapesWorld()
    # the fixture draws its own vocabulary instead of COCO's 133 classes
    shapes_meta = dict(classes=w.thing_classes + w.stuff_classes,
                       thing_classes=w.thing_classes,
                       stuff_classes=w.stuff_classes)
    options = {}
    if n == 1:
        options[f'{ds_key}.data_root'] = f'{roots}/coco/'
        options[f'{ds_key}.metainfo'] = shapes_meta
    else:
        # the full mix wraps COCO in ExcludeImages (RefCOCO val/test images)
        coco = f'{ds_key}.datasets.0' + ('.dataset' if n == 6 else '')
        options[f'{coco}.metainfo'] = shapes_meta
        per = [f'{roots}/coco/', f'{roots}/ade/', f'{roots}/vg/',
               f'{roots}/coco/', f'{roots}/coco/', f'{roots}/coco/']
        for i in range(n):
            options[f'{ds_key}.datasets.{i}.data_root'] = per[i]
        if n == 6:
            del options[f'{ds_key}.datasets.0.data_root']
            options[f'{coco}.data_root'] = per[0]
            options[f'{ds_key}.datasets.0.ref_files'] = [
                f'{roots}/coco/{d}/refs({s}).p'
                for d, s in (('refcoco', 'unc'), ('refcoco+', 'unc'),
                             ('refcocog', 'umd'))]
            options[f'{ds_key}.datasets.2.data_prefix.img'] = 'images/'
    cfg.merge_from_dict(options)
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    subsets = ds.datasets if hasattr(ds, 'datasets') else [ds]
    assert len(subsets) == n
    tasks = set()
    for sub in subsets:
        assert len(sub) > 0
        sample = sub[0]['data_samples']
        assert len(sample.texts) > 0
        assert sample.gt_instances.labels.max() < len(sample.texts)
        tasks.add(sample.task)
    expected = {1: {'panoptic'}, 2: {'panoptic', 'semantic'},
                6: {'panoptic', 'semantic', 'grounding', 'referring'}}[n]
    assert tasks == expected


def test_query_ablation_configs_give_every_strategy_the_same_total():
    """Paper Table 2: learnable 400, conditional 400, mixed 100 + 300."""
    import mqformer  # noqa: F401
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    totals = {}
    for suffix in ('', '_learnable', '_conditional'):
        cfg = Config.fromfile(osp.join(
            REPO, 'configs', 'mqformer',
            f'mqformer_r50_8xb2-50e_coco-instance{suffix}.py'))
        m = cfg.model
        mode = m.query_mode
        n_l = m.num_learnable_queries if mode != 'conditional' else 0
        n_c = m.num_conditional_queries if mode != 'learnable' else 0
        totals[mode] = (n_l, n_c)
    assert totals == {'mixed': (100, 300), 'learnable': (400, 0),
                      'conditional': (0, 400)}
    # every Table 2 scale has the three strategies with those totals, and
    # the tiny panoptic ablation 10 + 20 / 30 / 30
    for prefix, scales, want in (
            ('mqformer_r50_8xb2-50e_', ('coco-ps', 'coco-ps_ade-ss',
                                        'coco-ps_ade-ss_vg_ref'), 400),
            ('mqformer_tiny_shapes-', ('panoptic', ), 30)):
        for scale in scales:
            for suffix in ('', '_learnable', '_conditional'):
                m = Config.fromfile(osp.join(
                    REPO, 'configs', 'mqformer',
                    f'{prefix}{scale}{suffix}.py')).model
                n_l = m.num_learnable_queries \
                    if m.query_mode != 'conditional' else 0
                n_c = m.num_conditional_queries \
                    if m.query_mode != 'learnable' else 0
                assert n_l + n_c == want, (scale, suffix)
                assert m.query_mode == (suffix[1:] or 'mixed')
    # and the built model really has that many matching queries
    cfg.model.text_encoder = Config.fromfile(osp.join(
        REPO, 'configs/_base_/models/mqformer_tiny.py')).tiny_text_encoder
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert model.num_queries == 400 and model.num_learnable == 0

"""The fair Mask2Former: built at our size with our kernels and recipe,
thresholds chosen on calibration images only, a resumable seeds runner, and
the crowded world."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO

BASELINE = f'{REPO}/configs/baselines/mask2former_tiny_shapes-panoptic.py'
OURS = f'{REPO}/configs/mqformer/mqformer_tiny_shapes-panoptic.py'
TOOLS = f'{REPO}/tools/analysis_tools'
MAKE_WORLD = f'{REPO}/tools/dataset_converters/make_shapes_world.py'


def build(cfg):
    import mqformer  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return MODELS.build(cfg.model)


def attention_classes(model):
    from mmcv.cnn.bricks.transformer import MultiheadAttention
    from mmcv.ops import MultiScaleDeformableAttention
    kinds = set()
    for m in model.modules():
        if isinstance(m, MultiScaleDeformableAttention):
            kinds.add(type(m))
        if isinstance(m, MultiheadAttention):
            kinds.add(type(m.attn))
    return kinds


def test_baseline_is_built_at_our_size_with_our_kernels_and_recipe():
    from mmengine.config import Config
    from mqformer.models.layers import (CPUMultiScaleDeformableAttention,
                                        SDPAMultiheadAttention)
    peer_cfg, ours_cfg = Config.fromfile(BASELINE), Config.fromfile(OURS)
    ours_cfg.model.text_encoder = ours_cfg.tiny_text_encoder
    peer, ours = build(peer_cfg), build(ours_cfg)
    assert type(peer).__name__ == 'Mask2Former'
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(peer.backbone) == count(ours.backbone)
    assert [type(m) for m in peer.backbone.modules()] == \
        [type(m) for m in ours.backbone.modules()]
    kinds = {CPUMultiScaleDeformableAttention, SDPAMultiheadAttention}
    assert attention_classes(peer) == kinds == attention_classes(ours)
    # the same recipe: optimizer, clipping, batch, data size, query total
    for key in ('optim_wrapper', ):
        assert peer_cfg[key] == ours_cfg[key]
    assert peer_cfg.train_dataloader.batch_size == \
        ours_cfg.train_dataloader.batch_size
    assert peer_cfg.model.panoptic_head.num_queries == \
        ours_cfg.model.num_learnable_queries + \
        ours_cfg.model.num_conditional_queries
    assert peer.data_preprocessor.pad_size_divisor == \
        ours.data_preprocessor.pad_size_divisor
    assert not peer.data_preprocessor.batch_augments


def test_fast_attention_keeps_the_weights_of_the_stock_model():
    """FastAttention builds the named model and converts it in place: the
    same state-dict keys as the stock build, and a clear error for a
    missing model_type."""
    from mmengine.config import Config
    cfg = Config.fromfile(BASELINE)
    stock = dict(cfg.model, type='Mask2Former')
    stock.pop('model_type')
    torch.manual_seed(0)
    fast = build(cfg)
    plain = build(Config(dict(model=stock)))
    assert list(fast.state_dict()) == list(plain.state_dict())
    assert not attention_classes(plain) & attention_classes(fast)
    with pytest.raises(ValueError, match='model_type'):
        build(Config(dict(model=dict(cfg.model, model_type='FastAttention'))))


@pytest.fixture(scope='module')
def small_world(tmp_path_factory):
    root = tmp_path_factory.mktemp('fair') / 'world'
    subprocess.run([sys.executable, MAKE_WORLD, str(root), '--train', '2',
                    '--val', '3', '--calib', '3'], check=True,
                   capture_output=True)
    return str(root)


def baseline_on(root, work_dir):
    from mmengine.config import Config
    sys.path.insert(0, TOOLS)
    from fair_comparison import on_world, world_classes
    cfg = Config.fromfile(BASELINE)
    things, stuff = world_classes(root)
    on_world(cfg, root, things, stuff, things, stuff)
    cfg.work_dir = str(work_dir)
    return cfg


def test_calibration_reads_only_calibration_images(small_world, tmp_path):
    """Thresholds are chosen on the calibration split: every image the
    model ran on is a calibration image, none is a test image (names and
    ids disjoint); a config whose validation images are its test images
    is refused; the chosen setting is the best of the table."""
    from mqformer.evaluation.threshold_calibration import calibrate
    cfg = baseline_on(small_world, tmp_path)
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'm2f.pth')
    torch.save(dict(state_dict=build(cfg).state_dict(), meta={}), ckpt)
    grid = dict(object_mask_thr=(0.0, 0.5), iou_thr=(0.8, ))
    out = calibrate(cfg, ckpt, grid, work_dir=str(tmp_path / 'cal'))
    test = json.load(open(osp.join(small_world, 'annotations',
                                   'panoptic_val.json')))
    calib = json.load(open(osp.join(small_world, 'annotations',
                                    'panoptic_calib.json')))
    assert out['num_images'] == 3
    assert all(osp.basename(osp.dirname(p)) == 'calib'
               for p in out['img_paths'])
    assert not {osp.basename(p) for p in out['img_paths']} & {
        i['file_name'] for i in test['images']}
    assert not {i['id'] for i in calib['images']} & {
        i['id'] for i in test['images']}
    assert len(out['table']) == 2
    assert out['best'] == max(r['metrics']['coco_panoptic/PQ']
                              for r in out['table'])
    # of two values tried, either is an edge; a single value is none
    assert out['at_edge'] == ['object_mask_thr']
    assert 'object_mask_thr' not in cfg.model.test_cfg  # config untouched

    cfg.val_dataloader = cfg.test_dataloader
    with pytest.raises(ValueError, match='overlap the test images'):
        calibrate(cfg, ckpt, grid, work_dir=str(tmp_path / 'cal2'))


def test_a_choice_at_the_grids_edge_is_flagged():
    from mqformer.evaluation.threshold_calibration import grid_edges
    grid = dict(object_mask_thr=(0.1, 0.2, 0.3), iou_thr=(0.5, 0.8))
    assert grid_edges(grid, dict(object_mask_thr=0.2, iou_thr=0.8)) == \
        ['iou_thr']
    assert grid_edges(grid, dict(object_mask_thr=0.1, iou_thr=0.5)) == \
        ['object_mask_thr', 'iou_thr']
    assert grid_edges(dict(iou_thr=(0.5, )), dict(iou_thr=0.5)) == []


def test_replayed_post_processing_equals_the_model_output(small_world,
                                                         tmp_path):
    """The cached fusion-head inputs, post-processed again at the model's
    own thresholds, give exactly the panoptic maps of a normal pass."""
    from mmengine.runner import Runner
    from mqformer.evaluation.threshold_calibration import PostProcessCache
    cfg = baseline_on(small_world, tmp_path)
    cfg.model.test_cfg.object_mask_thr = 0.0  # segments in a random model
    cfg.log_level = 'WARNING'
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = None
    cfg.param_scheduler = None
    runner = Runner.from_cfg(cfg)
    loader = runner.build_dataloader(cfg.val_dataloader)
    model = runner.model.eval()
    direct = []
    with torch.no_grad():
        for batch in loader:
            direct += model.test_step(batch)
    replay = PostProcessCache(model).record(loader).replay()
    assert len(replay) == len(direct) == 3
    for a, b in zip(direct, replay):
        assert a.img_path == b.img_path
        assert torch.equal(a.pred_panoptic_seg.sem_seg,
                           b.pred_panoptic_seg.sem_seg)
    assert 'predict' not in vars(model.panoptic_fusion_head)  # unpatched


def stored_row(pq, commit='x', **extra):
    """A stored run of fair_comparison.py with every score ``pq``."""
    return dict(PQ=pq, **{'PQ th': pq, 'PQ st': pq, 'mask AP': pq,
                          'box AP': pq},
                iters=10, seconds=1, minutes=0.1, thresholds=dict(
                    object_mask_thr=0.3, iou_thr=0.8), commit=commit,
                date='d', **extra)


def no_world_generation(monkeypatch):
    """The runner's world generation off (the tests' runs are faked)."""
    sys.path.insert(0, f'{REPO}/tools')
    import demo
    monkeypatch.setattr(demo, 'make_world', lambda *a, **k: None)


def test_seeds_runner_skips_finished_runs(tmp_path, monkeypatch):
    sys.path.insert(0, TOOLS)
    import fair_comparison
    row = stored_row
    store = tmp_path / 'store.json'
    done = {f'shapes/{m}/seed{s}': row(30.0 if m == 'mqformer' else 20.0)
            for m in ('mqformer', 'mask2former') for s in (0, 1)}
    store.write_text(json.dumps(done))
    calls = []

    def one_run(args, world, name, seed):
        calls.append((world, name, seed))
        return row(40.0 if name == 'mqformer' else 25.0)
    monkeypatch.setattr(fair_comparison, 'one_run', one_run)
    no_world_generation(monkeypatch)
    argv = ['--worlds', 'shapes', '--seeds', '0', '1', '2', '--store',
            str(store), '--work-dir', str(tmp_path / 'wd')]
    results = fair_comparison.main(argv)
    assert sorted(calls) == [('shapes', 'mask2former', 2),
                             ('shapes', 'mqformer', 2)]
    assert len(json.loads(store.read_text())) == 6 == len(results)
    calls.clear()
    fair_comparison.main(argv)
    assert calls == []
    text = fair_comparison.table(results, 'shapes',
                                 ['mqformer', 'mask2former'])
    assert 'PQ win' in text and '3 seed(s)' in text
    two = {k: v for k, v in results.items() if not k.endswith('seed2')}
    assert 'no verdict below 3 seeds' in fair_comparison.table(
        two, 'shapes', ['mqformer', 'mask2former'])
    assert fair_comparison.verdict([30, 40], [20, 25]) == 'win'
    assert fair_comparison.verdict([30, 40], [35, 50]) == 'tie'
    assert fair_comparison.verdict([10, 20], [35, 50]) == 'lose'


def test_rescore_keeps_the_old_row_and_reports_the_change_per_seed(
        tmp_path, monkeypatch):
    sys.path.insert(0, TOOLS)
    import fair_comparison
    from mqformer.evaluation.lost_objects import STAGES, TAKERS
    row = lambda pq, commit: stored_row(  # noqa: E731
        pq, commit, lost=dict(thing=dict.fromkeys(STAGES, 1),
                              stuff=dict.fromkeys(STAGES, 1),
                              mask_iou=dict(thing=0.5, stuff=0.5),
                              merge_pixels=dict(
                                  thing=dict.fromkeys(TAKERS, 1),
                                  stuff=dict.fromkeys(TAKERS, 1)),
                              merge_owners={
                                  'segments': 2, 'duplicate': 1,
                                  'absent name': 2, 'owner score': 1.2,
                                  'right score': 0.8, 'stuff_queries': 30,
                                  'images': 10}))
    store = tmp_path / 'store.json'
    done = {f'shapes/{m}/seed{s}': row(30.0 + s, 'old')
            for m in ('mqformer', 'mask2former') for s in (0, 1, 2)}
    store.write_text(json.dumps(done))
    for s in (0, 1):  # seed 2's checkpoint is gone: it is left as it was
        ckpt = tmp_path / 'wd' / 'shapes' / 'mqformer' / f'seed{s}'
        ckpt.mkdir(parents=True)
        (ckpt / 'final.pth').write_bytes(b'')
    scored = []

    def score_checkpoint(world, name, cfg, ckpt, wd):
        scored.append(ckpt)
        return row(35.0, 'new')
    monkeypatch.setattr(fair_comparison, 'score_checkpoint',
                        score_checkpoint)
    monkeypatch.setattr(fair_comparison, 'commit', lambda: 'new')
    no_world_generation(monkeypatch)
    argv = ['--worlds', 'shapes', '--models', 'mqformer', '--seeds', '0',
            '1', '--rescore', '--store', str(store), '--work-dir',
            str(tmp_path / 'wd')]
    results = fair_comparison.main(argv)
    assert len(scored) == 2
    assert results['shapes/mqformer/seed0']['PQ'] == 35.0
    assert results['shapes/mqformer/seed0']['trained_commit'] == 'old'
    assert results['shapes/mqformer/seed0']['iters'] == 10  # training's
    assert results['shapes/mqformer@new/seed1']['PQ'] == 31.0
    assert results['shapes/mqformer/seed2']['commit'] == 'old'
    fair_comparison.main(argv)  # scored at this commit: not again
    assert len(scored) == 2
    text = fair_comparison.table(results, 'shapes', ['mqformer'])
    assert 'before new' in text
    assert 'PQ +4.5 [+4.0 to +5.0]' in text  # seeds 0, 1: 35-30, 35-31
    # the owners over the 3 seeds of the current rows
    owners = fair_comparison.owners_table(results, 'shapes', ['mqformer'])
    assert '| MQ-Former tiny, panoptic data (3 seeds) | 6 | 50% | 100% | ' \
        '0.60 | 0.40 | 3.0 |' \
        in owners


def test_retrain_keeps_the_old_row_and_trains_the_seed_again(
        tmp_path, monkeypatch):
    """--retrain: runs trained at another commit are trained again with the
    same seeds; the old rows and work dirs stay as name@commit, a run
    trained at this commit is not repeated, and the table says the
    checkpoints are new."""
    sys.path.insert(0, TOOLS)
    import fair_comparison
    row = stored_row
    store = tmp_path / 'store.json'
    done = {f'shapes/{m}/seed{s}': row(30.0 + s, 'old')
            for m in ('mqformer', 'mask2former') for s in (0, 1)}
    store.write_text(json.dumps(done))
    wd = tmp_path / 'wd' / 'shapes' / 'mqformer' / 'seed0'
    wd.mkdir(parents=True)
    (wd / 'final.pth').write_bytes(b'old')
    calls = []

    def one_run(args, world, name, seed):
        calls.append((world, name, seed))
        return row(40.0, 'new')
    monkeypatch.setattr(fair_comparison, 'one_run', one_run)
    monkeypatch.setattr(fair_comparison, 'commit', lambda: 'new')
    no_world_generation(monkeypatch)
    argv = ['--worlds', 'shapes', '--models', 'mqformer', '--seeds', '0',
            '1', '--retrain', '--store', str(store), '--work-dir',
            str(tmp_path / 'wd')]
    results = fair_comparison.main(argv)
    assert sorted(calls) == [('shapes', 'mqformer', 0),
                             ('shapes', 'mqformer', 1)]
    assert results['shapes/mqformer@new/seed1']['PQ'] == 31.0
    assert results['shapes/mqformer/seed0']['PQ'] == 40.0
    assert results['shapes/mask2former/seed0']['commit'] == 'old'
    assert (tmp_path / 'wd' / 'shapes' / 'mqformer@new' / 'seed0' /
            'final.pth').read_bytes() == b'old'
    calls.clear()
    fair_comparison.main(argv)  # trained at this commit: not again
    assert calls == []
    text = fair_comparison.table(results, 'shapes', ['mqformer'])
    assert 'trained again, same seeds' in text
    assert 'PQ +9.5 [+9.0 to +10.0]' in text


def test_variant_rows_are_a_config_with_settings_changed():
    """A row such as ``mqformer_dense`` is its base config with OPTIONS
    merged in; the others are their configs as they are."""
    sys.path.insert(0, TOOLS)
    import fair_comparison
    dense = fair_comparison.model_config('mqformer_dense', 'shapes')
    plain = fair_comparison.model_config('mqformer', 'shapes')
    assert dense.model.bbox_head.mask_loss_sampling == 'dense'
    assert plain.model.bbox_head.get('mask_loss_sampling',
                                     'points') == 'points'
    assert set(fair_comparison.OPTIONS) <= set(fair_comparison.MODELS_CFG)


def test_the_stuff_as_mask2former_row_combines_two_configs(monkeypatch):
    """``mqformer_rolematch_masked``: the rolematch config's costs and the
    masked config's attention, nothing else changed."""
    from mmengine.config import Config
    sys.path.insert(0, TOOLS)
    import fair_comparison
    monkeypatch.setattr(fair_comparison, 'world_classes',
                        lambda root: (['red circle'], ['sky']))
    cfgs = {n: Config.fromfile(f'{REPO}/configs/mqformer/'
                               f'mqformer_tiny_shapes-panoptic_{n}.py')
            for n in ('rolematch-masked', 'rolematch', 'masked')}
    row = cfgs['rolematch-masked']
    assert row.model.train_cfg == cfgs['rolematch'].model.train_cfg
    assert row.model.train_cfg.assigner.match_costs[-1].type == \
        'QueryRoleCost'
    assert row.model.decoder == cfgs['masked'].model.decoder
    assert row.model.decoder.layer_cfg.masked_attn_cfg
    for key in ('train_dataloader', 'optim_wrapper', 'train_cfg'):
        assert row[key] == cfgs['masked'][key]
    built = fair_comparison.model_config('mqformer_rolematch_masked',
                                         'crowded')
    assert built.model.train_cfg == row.model.train_cfg
    assert (built.model.num_learnable_queries,
            built.model.num_conditional_queries) == (25, 75)


def test_a_transform_option_reaches_every_training_pipeline(monkeypatch):
    """``mqformer_sampled_negatives`` sets ``num_negatives=8`` in the
    training pipeline's ClassNamesToTexts (inside the dataset wrapper); the
    plain row keeps every absent name a negative (-1)."""
    sys.path.insert(0, TOOLS)
    import fair_comparison

    def steps(node):
        if hasattr(node, 'items'):
            if node.get('type') == 'ClassNamesToTexts':
                yield node
            for v in node.values():
                yield from steps(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                yield from steps(v)

    sampled = list(steps(fair_comparison.model_config(
        'mqformer_sampled_negatives', 'shapes').train_dataloader))
    plain = list(steps(fair_comparison.model_config(
        'mqformer', 'shapes').train_dataloader))
    assert len(sampled) == len(plain) >= 1
    assert {t['num_negatives'] for t in sampled} == {8}
    assert {t['num_negatives'] for t in plain} == {-1}
    # an option whose transform no training pipeline has is an error
    monkeypatch.setitem(fair_comparison.OPTIONS, 'mqformer_dense',
                        {'PhrasesToTexts.unique': False})
    monkeypatch.setattr(fair_comparison, 'TRANSFORM_KEYS',
                        ('ClassNamesToTexts', 'PhrasesToTexts'))
    with pytest.raises(KeyError, match='no PhrasesToTexts step'):
        fair_comparison.model_config('mqformer_dense', 'shapes')


def test_crowded_rows_share_one_query_total(monkeypatch):
    """On the crowded world every row has 100 queries, split by its query
    mode (the learnable-only row: 100 learnable, no conditional)."""
    sys.path.insert(0, TOOLS)
    import fair_comparison
    monkeypatch.setattr(fair_comparison, 'world_classes',
                        lambda root: (['red circle'], ['sky']))
    counts = {}
    for name in ('mqformer', 'mqformer_learnable', 'mqformer_masked'):
        m = fair_comparison.model_config(name, 'crowded').model
        counts[name] = (m.query_mode, m.num_learnable_queries,
                        m.num_conditional_queries)
    m2f = fair_comparison.model_config('mask2former', 'crowded').model
    assert counts == dict(mqformer=('mixed', 25, 75),
                          mqformer_learnable=('learnable', 100, 0),
                          mqformer_masked=('mixed', 25, 75))
    # masked attention as wide as the decoder's own self-attention
    layer = fair_comparison.model_config('mqformer_masked',
                                         'crowded').model.decoder.layer_cfg
    plain = fair_comparison.model_config('mqformer',
                                         'crowded').model.decoder.layer_cfg
    assert layer.masked_attn_cfg == layer.self_attn_cfg
    assert plain.get('masked_attn_cfg') is None
    assert m2f.panoptic_head.num_queries == 100


def test_crowded_world_is_coco_like(tmp_path):
    subprocess.run([sys.executable, MAKE_WORLD, str(tmp_path), '--preset',
                    'crowded', '--train', '1', '--val', '6'], check=True,
                   capture_output=True)
    pan = json.load(open(tmp_path / 'annotations' / 'panoptic_val.json'))
    cats = {c['id']: c for c in pan['categories']}
    assert sum(c['isthing'] for c in cats.values()) >= 40
    assert sum(not c['isthing'] for c in cats.values()) >= 10
    things = [[s for s in a['segments_info'] if cats[s['category_id']]
               ['isthing']] for a in pan['annotations']]
    # up to 40 drawn; occlusion may hide a few of the 10 or more
    assert all(5 <= len(t) <= 40 for t in things)
    areas = [s['area'] for t in things for s in t]
    assert min(areas) < 40 and max(areas) > 800  # small and large things
    shapes = {(i['height'], i['width']) for i in pan['images']}
    assert len(shapes) == len(pan['images'])  # sizes and aspect ratios vary
    # irregular stuff: some stuff segment is not a full-width band
    widths = [s['bbox'][2] / i['width']
              for a, i in zip(pan['annotations'], pan['images'])
              for s in a['segments_info']
              if not cats[s['category_id']]['isthing']]
    assert min(widths) < 0.9
    r = subprocess.run([sys.executable, MAKE_WORLD, str(tmp_path / 'x'),
                        '--preset', 'crowded', '--hold-out', 'red blob'],
                       capture_output=True, text=True)
    assert r.returncode != 0 and 'red blob' in r.stderr

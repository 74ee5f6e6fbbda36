"""tools/analysis_tools/query_ablation.py: every scale's training mix builds
on the held-out world, each run is evaluated with its own strategy's queries
(open-vocabulary column on names no training file has), Table 2's metrics are
stored, and a finished run is never repeated."""
import json
import os.path as osp
import subprocess
import sys

from conftest import REPO

TOOL = osp.join(REPO, 'tools/analysis_tools/query_ablation.py')


def tool():
    sys.path.insert(0, osp.dirname(TOOL))
    import query_ablation
    return query_ablation


def test_scales_add_semantic_then_grounding_and_referring_data():
    from mmengine.config import Config
    qa = tool()
    cfg = qa.on_world(Config.fromfile(qa.STRATEGY_CFG['conditional']),
                      'data/held')
    types = {s: [d.type for d in qa.scale_datasets(cfg, s)]
             for s in ('ps', 'ps_ss', 'ps_ss_vg_ref')}
    assert types == dict(
        ps=['CocoPanopticDataset'],
        ps_ss=['CocoPanopticDataset', 'ADE20KSegDataset'],
        ps_ss_vg_ref=['CocoPanopticDataset', 'ADE20KSegDataset',
                      'ODVGDataset', 'RefCocoSentencesDataset'])
    sets = qa.scale_datasets(cfg, 'ps_ss_vg_ref')
    assert all(d.data_root.startswith('data/held/') for d in sets)
    sem = sets[1]
    assert 'training' in sem.data_prefix['img_path']
    assert any(t['type'] == 'RandomFlip' for t in sem.pipeline)
    for d in sets[:2]:  # no held-out name is a training text
        assert not set(qa.HELD_OUT) & set(d.metainfo['classes'])
        assert len(d.metainfo['classes']) == 18 - len(qa.HELD_OUT) + 4
    assert cfg.model.query_mode == 'conditional'


def test_each_strategy_is_evaluated_with_its_own_queries():
    from mmengine.config import Config
    qa = tool()
    for strategy in qa.STRATEGY_CFG:
        model = Config.fromfile(qa.STRATEGY_CFG[strategy]).model
        for task in ('instance', 'panoptic', 'semantic', 'openvocab'):
            ecfg = qa.eval_cfg(task, model, 'data/held')
            assert ecfg.model.query_mode == qa.query_mode(strategy)
            assert (ecfg.model.num_learnable_queries,
                    ecfg.model.num_conditional_queries) == (
                        model.num_learnable_queries,
                        model.num_conditional_queries)
            ds = ecfg.test_dataloader.dataset
            assert ds.data_root.startswith('data/held')
            if task == 'openvocab':
                assert ds.metainfo['classes'] == list(qa.HELD_OUT)
                assert ecfg.test_evaluator.ann_file.startswith('data/held/')
            else:
                assert not set(qa.HELD_OUT) & set(ds.metainfo['classes'])
        assert ecfg.model.test_cfg.instance_on


def test_the_nodual_row_is_the_mixed_model_without_the_dual_block():
    """``mixed_nodual`` (the mechanism row): mixed queries, the same
    counts, every decoder layer without the dual-query cross-attention;
    the mixed strategy keeps it."""
    import torch
    from mmengine.config import Config

    from mqformer.models.layers import MixedQueryDecoder, QuerySplit
    qa = tool()
    layers = {}
    for strategy in ('mixed', 'mixed_nodual'):
        model = Config.fromfile(qa.STRATEGY_CFG[strategy]).model
        assert qa.query_mode(strategy) == model.query_mode == 'mixed'
        kwargs = {k: v for k, v in model.decoder.items() if k != 'type'}
        dec = MixedQueryDecoder(**dict(kwargs, query_mode='mixed'))
        layers[strategy] = dec.layers
    assert all(l.with_dual_attn for l in layers['mixed'])
    assert not any(l.with_dual_attn or hasattr(l, 'c2l_attn')
                   for l in layers['mixed_nodual'])
    # the block is an identity there: queries pass through unchanged
    q = torch.randn(2, 30, 64)
    split = QuerySplit(num_learnable=10, num_conditional=20)
    out = layers['mixed_nodual'][0].dual_query_cross_attn(q, q, split)
    assert torch.equal(out, q)


def test_the_thingsel_row_is_the_mixed_model_selecting_on_things():
    """``mixed_thingsel`` (the selection row): the mixed model, the same
    query counts, conditional queries selected on thing texts only."""
    from mmengine.config import Config
    qa = tool()
    mixed, row = (Config.fromfile(qa.STRATEGY_CFG[s]).model
                  for s in ('mixed', 'mixed_thingsel'))
    assert qa.query_mode('mixed_thingsel') == row.query_mode == 'mixed'
    assert mixed.get('proposal_texts', 'all') == 'all'
    assert row.proposal_texts == 'things'
    assert (row.num_learnable_queries, row.num_conditional_queries) == (
        mixed.num_learnable_queries, mixed.num_conditional_queries)


def test_the_rolematch_row_is_the_mixed_model_matching_stuff_to_learnable():
    """``mixed_rolematch`` (the matching row): the mixed model, the same
    query counts and costs, plus the QueryRoleCost."""
    from mmengine.config import Config
    qa = tool()
    mixed, row = (Config.fromfile(qa.STRATEGY_CFG[s]).model
                  for s in ('mixed', 'mixed_rolematch'))
    assert qa.query_mode('mixed_rolematch') == row.query_mode == 'mixed'
    costs = row.train_cfg.assigner.match_costs
    assert costs[:-1] == mixed.train_cfg.assigner.match_costs
    assert costs[-1].type == 'QueryRoleCost'
    assert (row.num_learnable_queries, row.num_conditional_queries) == (
        mixed.num_learnable_queries, mixed.num_conditional_queries)


def test_held_out_world_never_names_nor_draws_the_held_out_classes(
        tmp_path):
    """Every training/validation file of the world lacks the held-out names;
    the open-vocabulary set has exactly them, with objects to find."""
    qa = tool()
    out = tmp_path / 'w'
    subprocess.run([sys.executable, osp.join(
        REPO, 'tools/dataset_converters/make_shapes_world.py'), str(out),
        '--train', '6', '--val', '12', '--hold-out', *qa.HELD_OUT],
        check=True, capture_output=True)
    texts = ''
    for f in out.rglob('*'):
        # world.json: the generator's own settings (lists the held-out names),
        # read by no dataset
        if f.suffix in ('.json', '.jsonl', '.p') and f.name != 'world.json':
            texts += f.read_bytes().decode('latin-1') + '\n'
    ov = json.load(open(out / 'openvocab/annotations/instances_val.json'))
    rest = texts.replace(json.dumps(ov['categories']), '')  # its own names
    for name in qa.HELD_OUT:
        assert name not in rest, name
    assert [c['name'] for c in ov['categories']] == list(qa.HELD_OUT)
    assert len(ov['annotations']) >= 6
    assert {a['category_id'] for a in ov['annotations']} <= {1, 2, 3}
    r = subprocess.run([sys.executable, osp.join(
        REPO, 'tools/dataset_converters/make_shapes_world.py'), str(out),
        '--hold-out', 'pink circle'], capture_output=True, text=True)
    assert r.returncode != 0 and 'pink circle' in r.stderr


def test_crowded_preset_holds_out_its_names_and_counts_its_queries(
        tmp_path):
    """--preset crowded: a crowded world without the preset's held-out
    names in any training or validation file, the open-vocabulary set of
    exactly them, the world's own class lists in every config and the
    fair comparison's query totals (25 + 75, 100, 100)."""
    from mmengine.config import Config
    qa = tool()
    held = qa.PRESETS['crowded']['held_out']
    out = tmp_path / 'crowded'
    subprocess.run([sys.executable, osp.join(
        REPO, 'tools/dataset_converters/make_shapes_world.py'), str(out),
        '--preset', 'crowded', '--train', '2', '--val', '4', '--hold-out',
        *held], check=True, capture_output=True)
    assert qa.world_settings(str(out)) == ('crowded', held)
    pan = json.load(open(out / 'annotations/panoptic_train.json'))
    names = {c['name'] for c in pan['categories']}
    assert len(names) == 60 - len(held) + 10 and not names & set(held)
    ov = json.load(open(out / 'openvocab/annotations/instances_val.json'))
    assert [c['name'] for c in ov['categories']] == list(held)
    assert len(ov['annotations']) >= 4 * 5  # crowded: many per image
    cfg = qa.on_world(Config.fromfile(qa.STRATEGY_CFG['mixed']), str(out))
    for d in qa.scale_datasets(cfg, 'ps_ss'):
        assert set(d.metainfo['classes']) == names
    ecfg = qa.eval_cfg('openvocab', cfg.model, str(out))
    assert ecfg.test_dataloader.dataset.metainfo['classes'] == list(held)
    args = qa.parse_args(['--preset', 'crowded'])
    assert (args.world, args.val_images) == ('data/crowded_world_heldout',
                                             200)
    args.world = str(out)
    for strategy, counts in dict(mixed=(25, 75), learnable=(100, 0),
                                 conditional=(0, 100)).items():
        model = qa.train_config(args, 'ps', strategy, 0).model
        assert (model.num_learnable_queries,
                model.num_conditional_queries) == counts
        assert model.query_mode == strategy
    nodual = qa.train_config(args, 'ps', 'mixed_nodual', 0).model
    assert (nodual.num_learnable_queries,
            nodual.num_conditional_queries) == (25, 75)


def test_runs_are_stored_and_resumed(tmp_path):
    args = [sys.executable, TOOL, '--minutes', '5', '--max-iters', '2',
            '--seeds', '0', '--scales', 'ps_ss_vg_ref', '--strategies', 'mixed',
            '--train-images', '6', '--val-images', '2', '--eval-at', '0.001']
    env = {'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'}
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.load(open(tmp_path / 'benchmarks/results/query_ablation.json'))
    assert sorted(res) == ['ps_ss_vg_ref/mixed/seed0']
    for row in res.values():
        assert row['iters'] == 2
        assert row['commit'] and row['date']
        assert {'mask AP', 'PQ', 'mIoU', 'open-vocab mask AP'} <= set(row)
    assert '| ps_ss_vg_ref | mixed |' in r.stdout
    # the mixed run's attribution split (section 4.1), with its pictures dir
    mixed = res['ps_ss_vg_ref/mixed/seed0']
    for key in ('things by conditional %', 'stuff by learnable %'):
        assert 0 <= mixed[key] <= 100
    wd = tmp_path / 'work_dirs/query_ablation/ps_ss_vg_ref/mixed/seed0'
    assert (wd / 'attribution/segments.json').is_file()
    assert (wd / 'attribution/counter_cases').is_dir()
    # every segment nothing covers says why (an untrained model misses some)
    segments = json.load(open(wd / 'attribution/segments.json'))
    missed = [s for s in segments if s['query_type'] is None]
    assert missed and all(s['miss'] in ('lost in merge', 'wrong text',
                                        'low score', 'no mask')
                          for s in missed)
    assert '| missed | lost in merge |' in (
        wd / 'attribution/misses.md').read_text()
    assert '| mixed model | things by conditional %' in r.stdout
    assert (tmp_path / 'data/shapes_world_heldout/openvocab').is_dir()
    # the learning curve: a point from the same run's own checkpoint (after
    # its first iteration) and the final one, each fully evaluated
    curve = mixed['curve']
    assert sorted(curve, key=float) == ['0.001', '5']
    early, final = curve['0.001'], curve['5']
    assert early['iters'] == 1 and final['iters'] == 2
    rel = 'work_dirs/query_ablation/ps_ss_vg_ref/mixed/seed0'
    assert early['checkpoint'] == f'{rel}/time_0.001min.pth'
    assert (tmp_path / early['checkpoint']).is_file()
    assert final['checkpoint'] == f'{rel}/final.pth'
    # the curve's picture, drawn from the stored points
    png = tmp_path / 'work_dirs/query_ablation/curve.png'
    assert png.read_bytes()[:4] == b'\x89PNG'
    for point in (early, final):
        assert {'mask AP', 'PQ', 'mIoU', 'open-vocab mask AP',
                'things by conditional %',
                'thing proposal recall %'} <= set(point)
        assert 0 <= point['thing proposal recall %'] <= 100
        for key in ('things matched to conditional %',
                    'stuff matched to learnable %'):
            assert point[key] is None or 0 <= point[key] <= 100
    assert '| ps_ss_vg_ref | mixed | 0.001 | 1.0 +- 0.0 |' in r.stdout
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0 and '0 runs to do, 1 done' in r.stdout


def test_curve_picture_draws_one_line_per_strategy_with_points(tmp_path):
    """plot_curve: a line per scale x strategy that has curve points (runs
    without a curve draw nothing; no points, no file)."""
    qa = tool()
    point = {h: 1.0 for h, *_ in qa.COLUMNS}
    results = {
        'ps/mixed/seed0': dict(curve={'2': point, '10': point}),
        'ps/mixed/seed1': dict(curve={'2': point, '10': point}),
        'ps/learnable/seed0': dict(curve={'2': point}),
        'ps/conditional/seed0': dict(iters=3),
    }
    png = tmp_path / 'curve.png'
    assert qa.plot_curve(results, ['ps'], list(qa.TABLE2), str(png)) == 2
    assert png.read_bytes()[:4] == b'\x89PNG'
    none = tmp_path / 'none.png'
    assert qa.plot_curve(results, ['ps_ss'], list(qa.TABLE2), str(none)) == 0
    assert not none.exists()

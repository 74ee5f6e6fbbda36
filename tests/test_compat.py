"""Each compat shim in mqformer/compat.py, with a test that fails without it."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset


class _ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.full((2, ), float(i)))


def _runner(work_dir, max_iters, resume=False, load_from=None):
    import mqformer  # noqa: F401
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, inputs, mode='tensor'):
            out = self.fc(inputs)
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

    return Runner(
        model=Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=100),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        resume=resume,
        load_from=load_from,
        default_scope='mmdet')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from mqformer.compat import checkpoint_io
    wd = tmp_path_factory.mktemp('ckpt')
    with checkpoint_io():
        _runner(wd, 2).train()
    path = osp.join(wd, 'iter_2.pth')
    assert osp.exists(path)
    return path


def test_torch_load_of_mmengine_checkpoint_needs_the_shim(checkpoint):
    """Without the shim, torch's weights_only default refuses it, and
    importing mqformer changes nothing (no global side effect)."""
    code = ('import torch, sys\n'
            'import mqformer\n'
            'from mmengine.logging import HistoryBuffer\n'
            'assert HistoryBuffer not in torch.serialization.get_safe_globals()\n'
            'getstate = HistoryBuffer.__dict__.get("__getstate__")\n'
            'try:\n'
            f'    torch.load({checkpoint!r})\n'
            'except Exception as e:\n'
            '    print("REFUSED", type(e).__name__)\n'
            'from mqformer.compat import checkpoint_io\n'
            'with checkpoint_io():\n'
            f'    print("LOADED", sorted(torch.load({checkpoint!r})))\n'
            'assert HistoryBuffer not in torch.serialization.get_safe_globals()\n'
            'assert HistoryBuffer.__dict__.get("__getstate__") is getstate\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    assert 'REFUSED UnpicklingError' in out, out
    assert "LOADED ['message_hub', 'meta', 'optimizer', 'param_schedulers'" \
        in out or "LOADED ['message_hub', 'meta', 'optimizer'" in out, out


def test_resume_restores_iteration_optimizer_and_message_hub(
        checkpoint, tmp_path):
    from mqformer.compat import checkpoint_io
    with checkpoint_io():
        ckpt = torch.load(checkpoint)  # weights_only=True default
        assert 'message_hub' in ckpt and ckpt['meta']['iter'] == 2
        runner = _runner(tmp_path, 4, resume=True, load_from=checkpoint)
        runner.train()
    assert runner.iter == 4
    hub = runner.message_hub
    assert len(hub.get_scalar('train/loss').data[0]) > 2  # history kept


def test_history_buffer_pickles_without_getattr_and_keeps_statistics():
    """Shim 2: stock mmengine pickles HistoryBuffer's statistics methods via
    ``getattr``, which weights_only must refuse; ours leaves them out and a
    loaded buffer still computes every statistic."""
    import io
    import pickletools
    from mmengine.logging import HistoryBuffer

    from mqformer.compat import checkpoint_io
    buf = HistoryBuffer()
    for v in (1.0, 3.0, 2.0):
        buf.update(v)
    with checkpoint_io():
        data = io.BytesIO()
        torch.save({'hub': buf}, data)
        data.seek(0)
        loaded = torch.load(data)['hub']
        raw = pickle.dumps(buf, protocol=2)  # torch.save's protocol
    assert loaded.max() == 3.0 and loaded.mean() == 2.0
    assert loaded.current() == 2.0 and loaded.statistics('min') == 1.0
    assert b'getattr' not in raw
    assert not any(arg == 'getattr' for _, arg, _ in pickletools.genops(raw))
    # outside the context mmengine's own pickling is back
    assert b'getattr' in pickle.dumps(buf, protocol=2)


class _Evil:

    def __reduce__(self):
        return (os.system, ('echo pwned > /tmp/mqformer_pwned',))


def evil_checkpoint(path):
    torch.save({'state_dict': {}, 'meta': {'x': _Evil()}}, str(path))
    return str(path)


def test_untrusted_pickles_stay_refused_with_a_clear_message(tmp_path):
    """The shim allow-lists types; it does not switch weights_only off, and
    mmengine's loader refuses with the file and the refused global."""
    from mmengine.runner import CheckpointLoader

    from mqformer.compat import checkpoint_io
    path = evil_checkpoint(tmp_path / 'evil.pth')
    with checkpoint_io():
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
        with pytest.raises(RuntimeError) as e:
            CheckpointLoader.load_checkpoint(path, map_location='cpu')
    msg = str(e.value)
    assert msg.startswith(f'{path}: refused to load')
    assert 'posix.system' in msg and 'could run code' in msg
    assert not osp.exists('/tmp/mqformer_pwned')


def test_entry_points_refuse_code_in_checkpoints(tmp_path, shapes_root):
    """tools/test.py, tools/infer.py and MQFormerInferencer."""
    from conftest import REPO
    from mqformer.apis import MQFormerInferencer
    path = evil_checkpoint(tmp_path / 'evil.pth')
    cfg = osp.join(REPO, 'configs', 'mqformer',
                   'mqformer_tiny_shapes-instance.py')
    with pytest.raises(RuntimeError, match='refused to load'):
        MQFormerInferencer(cfg, path)
    img = osp.join(shapes_root, 'val', os.listdir(
        osp.join(shapes_root, 'val'))[0])
    env = dict(os.environ, HF_HUB_OFFLINE='1')
    for cmd in (['tools/test.py', cfg, path, '--cfg-options',
                 f'test_dataloader.dataset.data_root={shapes_root}/',
                 f'test_evaluator.ann_file={shapes_root}/annotations/'
                 'instances_val.json', '--work-dir', str(tmp_path / 'wd')],
                ['tools/infer.py', img, '--config', cfg, '--weights', path,
                 '--texts', 'red circle', '--out-dir',
                 str(tmp_path / 'out')]):
        p = subprocess.run([sys.executable] + cmd, cwd=REPO, env=env,
                           capture_output=True, text=True)
        assert p.returncode != 0
        assert f'{path}: refused to load this checkpoint' in p.stderr, \
            p.stderr[-2000:]
    assert not osp.exists('/tmp/mqformer_pwned')


def test_panopticapi_runs_on_numpy2(shapes_root, tmp_path):
    """panopticapi-lite (installed --no-deps past its numpy<2 pin) computes PQ
    with numpy 2: ground truth against itself is PQ 100."""
    from panopticapi.evaluation import pq_compute
    assert np.__version__.startswith('2.')
    ann = osp.join(shapes_root, 'annotations', 'panoptic_val.json')
    folder = osp.join(shapes_root, 'annotations', 'panoptic_val')
    cwd = os.getcwd()
    os.chdir(tmp_path)  # pq_compute prints; keep any stray files out of cwd
    try:
        res = pq_compute(ann, ann, folder, folder)
    finally:
        os.chdir(cwd)
    assert res['All']['pq'] == pytest.approx(1.0)
    assert res['Things']['n'] > 0 and res['Stuff']['n'] > 0

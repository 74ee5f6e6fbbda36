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
    wd = tmp_path_factory.mktemp('ckpt')
    _runner(wd, 2).train()
    path = osp.join(wd, 'iter_2.pth')
    assert osp.exists(path)
    return path


def test_torch_load_of_mmengine_checkpoint_needs_the_shim(checkpoint):
    """Without mqformer's shim, torch's weights_only default refuses it."""
    code = ('import torch, sys\n'
            'try:\n'
            f'    torch.load({checkpoint!r})\n'
            'except Exception as e:\n'
            '    print("REFUSED", type(e).__name__); sys.exit(0)\n'
            'print("LOADED")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    assert 'REFUSED' in out, out


def test_resume_restores_iteration_optimizer_and_message_hub(
        checkpoint, tmp_path):
    import mqformer  # noqa: F401
    ckpt = torch.load(checkpoint)  # weights_only=True default, shim applied
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
    import mqformer  # noqa: F401
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    for v in (1.0, 3.0, 2.0):
        buf.update(v)
    data = io.BytesIO()
    torch.save({'hub': buf}, data)
    data.seek(0)
    loaded = torch.load(data)['hub']
    assert loaded.max() == 3.0 and loaded.mean() == 2.0
    assert loaded.current() == 2.0 and loaded.statistics('min') == 1.0
    raw = pickle.dumps(buf)
    assert b'getattr' not in raw
    assert not any(arg == 'getattr' for _, arg, _ in pickletools.genops(raw))


def test_untrusted_pickles_stay_refused():
    """The shim allow-lists types; it does not switch weights_only off."""
    import mqformer  # noqa: F401

    class Evil:

        def __reduce__(self):
            return (os.system, ('echo pwned',))

    import io
    buf = io.BytesIO()
    torch.save({'x': Evil()}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(buf)


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

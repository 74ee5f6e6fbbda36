"""benchmarks/profile_step.py's stage timer: nested stages are subtracted
from the outer one (the rows add up to the step) and the methods named in
STAGES are found on a model and timed."""
import os.path as osp
import sys
import time

from torch import nn

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))
import profile_step  # noqa: E402


def test_nested_stages_are_exclusive():
    timer = profile_step.StageTimer(lambda: None)
    with timer.stage('outer'):
        time.sleep(0.05)
        with timer.stage('inner'):
            time.sleep(0.1)
    assert timer.total['inner'] >= 0.1
    # the outer stage's own 0.05 s, without the inner 0.1 s
    assert 0.05 <= timer.total['outer'] < 0.1


def test_instrument_times_the_named_methods(monkeypatch):
    class Layer(nn.Module):
        def forward(self, x):
            time.sleep(0.02)
            return x

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Layer()
            self.layers = nn.ModuleList([Layer(), Layer()])

        def forward(self, x):
            x = self.backbone(x)
            for layer in self.layers:
                x = layer(x)
            return x

    monkeypatch.setitem(profile_step.STAGES, 'toy', [
        ('backbone', 'backbone', 'forward'),
        ('layers', 'layers.*', 'forward'),
        ('absent', 'neck', 'forward')])
    model = Model()
    timer = profile_step.StageTimer(lambda: None)
    found = profile_step.instrument(model, 'toy', timer)
    assert found == ['backbone', 'layers']  # a stage the model lacks is left out
    model(1)
    assert 0.02 <= timer.total['backbone'] < 0.06  # not the layers' 0.04
    assert 0.04 <= timer.total['layers']  # both layers


def test_round_draws_new_batches_and_times_the_loading():
    """A round (--in-run's block) draws ``steps`` new batches from the loader's
    iterator (the rest stay for the next round), the draw is timed as
    'data loading', and the model trains on what it drew."""
    import torch
    from mmengine.optim import OptimWrapper

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            self.seen = []

        def data_preprocessor(self, d, training):
            return d

        def forward(self, x, mode):
            self.seen.append(float(x))
            return dict(loss=((self.w - x) ** 2).sum())

        def parse_losses(self, losses):
            return losses['loss'], {}

    def slow_batches():
        k = 0
        while True:
            time.sleep(0.02)
            k += 1
            yield dict(x=torch.tensor(float(k)))

    model = Model()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    timer = profile_step.StageTimer(lambda: None)
    data = slow_batches()
    took = profile_step.run_round(model, optim, data, 3, timer, 'cpu', False)
    assert model.seen == [1.0, 2.0, 3.0]
    assert 0.06 <= timer.total['data loading'] <= took
    assert timer.total['data preprocessor'] < 0.02
    assert model.w.item() > 0  # it learned from the batches
    profile_step.run_round(model, optim, data, 2, timer, 'cpu', False)
    assert model.seen[3:] == [4.0, 5.0]  # new batches, not a replay


def test_backward_ops_splits_the_backward_by_node_type(capsys):
    """--backward-ops: each model's backward by autograd node type, ms per
    step; a node only one model runs shows only in its column."""
    import argparse

    import torch
    import torch.nn.functional as F
    from mmengine.optim import OptimWrapper

    class Model(nn.Module):
        def __init__(self, sample):
            super().__init__()
            self.w = nn.Parameter(torch.randn(1, 1, 64, 64))
            self.sample = sample

        def data_preprocessor(self, d, training):
            return d

        def forward(self, x, mode):
            if self.sample:  # GridSampler2DBackward0 in its backward
                y = F.grid_sample(self.w, x, align_corners=False)
            else:
                y = (self.w.flatten(1) @ self.w.flatten(1).T) * x.mean()
            return dict(loss=y.square().sum())

        def parse_losses(self, losses):
            return losses['loss'], {}

    def grids():
        while True:
            yield dict(x=torch.rand(1, 64, 32, 2) * 2 - 1)

    runs = {}
    for name, sample in (('sampler', True), ('matmul', False)):
        model = Model(sample)
        runs[name] = dict(model=model, data=grids(),
                          optim=OptimWrapper(torch.optim.SGD(
                              model.parameters(), lr=0.1)),
                          timer=profile_step.StageTimer(lambda: None))
    args = argparse.Namespace(backward_ops=3, in_run=1, device='cpu',
                              amp=False, json='', warmup=0)
    per = profile_step.backward_ops(args, runs)
    assert per['sampler']['GridSampler2DBackward0'] > 0
    assert 'GridSampler2DBackward0' not in per['matmul']
    assert any('Bmm' in k or 'Mm' in k or 'Matmul' in k
               for k in per['matmul'])
    out = capsys.readouterr().out
    assert '| GridSampler2DBackward0 | ' in out
    assert '| all nodes | ' in out and 'sampler - matmul' in out
    assert '| nodes per step | ' in out


def test_r50_world_builds_speed_memory_rows():
    """--world r50 profiles speed_memory.py's MQ-Former R50 row (mixed,
    100 + 300 queries) on its batch: 2 random 384x384 images before the data
    preprocessor; a model it does not know is refused by name."""
    import pytest
    raw, model, optim = profile_step.build_r50('mqformer', 'cpu')
    assert type(model).__name__ == 'MQFormer' and model.training
    assert (model.query_mode, model.num_learnable,
            model.num_conditional) == ('mixed', 100, 300)
    assert [tuple(x.shape) for x in raw['inputs']] == [(3, 384, 384)] * 2
    assert optim.optimizer.param_groups[0]['lr'] == 1e-5
    with pytest.raises(SystemExit, match='mqformer_pixels'):
        profile_step.build_r50('mqformer_pixels', 'cpu')

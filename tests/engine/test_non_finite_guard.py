"""A NaN/inf loss is reported with the iteration and the loss terms, the
weights and optimizer state are not updated with it, and too many in a row
stop training with a clear error."""
import logging

import pytest
import torch
from mmengine.hooks import Hook

from conftest import tiny_cfg


class NaNBoxLoss(Hook):
    """Makes ``loss_bbox`` NaN at the given (0-based) iterations and
    records the parameters around them."""

    def __init__(self, iters):
        self.iters = set(iters)
        self.active = False
        self.same = {}

    def before_train(self, runner):
        head = runner.model.bbox_head
        orig = head.loss_bbox.forward

        def forward(*args, **kwargs):
            out = orig(*args, **kwargs)
            return out * float('nan') if self.active else out

        head.loss_bbox.forward = forward

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.active = runner.iter in self.iters
        self.before = [p.detach().clone()
                       for p in runner.model.parameters()]
        opt = runner.optim_wrapper.optimizer
        self.steps = [opt.state[p].get('step') for p in opt.state][:1]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        params = list(runner.model.parameters())
        self.same[runner.iter] = all(
            torch.equal(a, b) for a, b in zip(self.before, params))
        opt = runner.optim_wrapper.optimizer
        if runner.iter in self.iters and self.steps:
            assert [opt.state[p].get('step') for p in opt.state][:1] == \
                self.steps


def runner_for(shapes_root, tmp_path, iters, max_iters, **wrapper):
    import mqformer  # noqa: F401
    from mmengine.runner import Runner
    cfg = tiny_cfg(shapes_root, tmp_path)
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 10**6
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**6, by_epoch=False)
    cfg.optim_wrapper.update(wrapper)
    hook = NaNBoxLoss(iters)
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    runner.register_hook(hook)
    return runner, hook


def capture():
    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    MMLogger.get_current_instance().addHandler(handler)
    return records, handler


def test_a_nan_step_is_skipped_and_reported(shapes_root, tmp_path):
    from mmengine.logging import MMLogger
    runner, hook = runner_for(shapes_root, tmp_path, {1}, 3)
    records, handler = capture()
    try:
        runner.train()
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    assert type(runner.optim_wrapper).__name__ == \
        'NonFiniteGuardOptimWrapper'  # the configs' wrapper
    assert hook.same == {0: False, 1: True, 2: False}
    msg = [m for m in records if 'non-finite loss' in m]
    assert len(msg) == 1 and msg[0].startswith('iteration 2: ')
    assert 'loss_bbox' in msg[0] and 'weights not updated' in msg[0]
    assert 'loss_cls' not in msg[0]  # only the terms that were not finite
    assert runner.optim_wrapper.num_skipped == 1


def test_too_many_in_a_row_stop_training_clearly(shapes_root, tmp_path):
    runner, _ = runner_for(shapes_root, tmp_path, range(1, 100), 20,
                           max_consecutive=3)
    with pytest.raises(RuntimeError, match=r'training stopped at iteration '
                       r'4: 3 non-finite steps in a row \(last: .*loss_bbox'):
        runner.train()


def test_a_finite_loss_with_non_finite_gradients_is_skipped():
    """sqrt at 0: the loss is 0, its gradient inf. The weights and the
    optimizer state stay; a finite gradient then steps again."""
    from mqformer.engine import NonFiniteGuardOptimWrapper
    w = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([w], lr=0.1)
    wrapper = NonFiniteGuardOptimWrapper(
        optimizer=opt, clip_grad=dict(max_norm=1.0), max_consecutive=3)
    loss = torch.sqrt(w).sum()
    assert torch.isfinite(loss)
    wrapper.update_params(loss)
    assert torch.equal(w.detach(), torch.zeros(2))
    assert not opt.state.get(w)  # no step taken
    assert wrapper.num_skipped == 1
    assert w.grad is None or not w.grad.any()
    wrapper.update_params((w - 1).pow(2).sum())
    assert (w.detach() > 0).all() and wrapper.consecutive == 0
    for _ in range(2):
        wrapper.update_params(torch.sqrt(w - w.detach()).sum())
    with pytest.raises(RuntimeError, match='3 non-finite steps in a row '
                       r'\(last: finite loss, non-finite gradients'):
        wrapper.update_params(torch.sqrt(w - w.detach()).sum())


def test_with_norm_clipping_the_gradients_are_read_once(monkeypatch):
    """The clip's total norm is the finiteness check: no second pass over
    the gradients, and the step is the stock wrapper's (same clipped
    update, same logged norm)."""
    from mmengine.logging import MessageHub
    from mmengine.optim import OptimWrapper

    from mqformer.engine import NonFiniteGuardOptimWrapper
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randn(8, 3)
    models = [torch.nn.Linear(5, 3) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    guard, stock = (
        cls(optimizer=torch.optim.AdamW(m.parameters(), lr=0.1),
            clip_grad=dict(max_norm=0.5))
        for cls, m in zip((NonFiniteGuardOptimWrapper, OptimWrapper), models))
    hub = MessageHub.get_current_instance()
    reads = []  # how often the guard's gradients are read for a norm
    grads = lambda: [p.grad for p in models[0].parameters()  # noqa: E731
                     if p.grad is not None]
    for mod, name in ((torch, '_foreach_norm'), (torch.linalg,
                                                 'vector_norm')):
        def spy(ts, *a, _f=getattr(mod, name), **k):
            seen = ts if isinstance(ts, (list, tuple)) else [ts]
            reads.extend(g for g in grads() if any(
                t.data_ptr() == g.data_ptr() for t in seen))
            return _f(ts, *a, **k)
        monkeypatch.setattr(mod, name, spy)
    for _ in range(3):
        stock.update_params(((models[1](x) - y)**2).sum() * 10)
        stock_norm = hub.get_scalar('train/grad_norm').current()
        reads.clear()
        guard.update_params(((models[0](x) - y)**2).sum() * 10)
        assert stock_norm > 0.5  # clipped
        assert hub.get_scalar('train/grad_norm').current() == \
            pytest.approx(stock_norm)
        assert len(reads) == 2  # weight and bias, once: the clip's norm
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)

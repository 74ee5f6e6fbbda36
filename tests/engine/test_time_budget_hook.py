"""TimeBudgetHook: stops on the budget, drops the learning rate once at
``decay_at`` of it, rejects a bad fraction."""
from types import SimpleNamespace

import pytest
import torch


def fake_runner(lr=1e-3):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    logs = []
    return SimpleNamespace(
        iter=0, optim_wrapper=SimpleNamespace(param_groups=opt.param_groups),
        train_loop=SimpleNamespace(stop_training=False),
        logger=SimpleNamespace(info=logs.append),
        message_hub=SimpleNamespace(update_info=lambda k, v: None)), logs


def test_lr_drops_once_at_the_fraction_then_stops_at_the_budget():
    import mqformer  # noqa: F401
    from mqformer.engine import TimeBudgetHook
    hook = TimeBudgetHook(minutes=1, decay_at=0.5, decay_factor=0.1)
    runner, logs = fake_runner()
    hook.before_train(runner)
    for t, lr, stop in ((10, 1e-3, False), (31, 1e-4, False),
                        (45, 1e-4, False), (61, 1e-4, True)):
        hook.elapsed = lambda t=t: float(t)
        hook.after_train_iter(runner, 0)
        assert runner.optim_wrapper.param_groups[0]['lr'] == pytest.approx(lr)
        assert runner.train_loop.stop_training is stop
        runner.iter += 1
    assert any('x0.1' in m for m in logs) and any('reached' in m for m in logs)


def test_a_run_capped_by_iterations_drops_at_the_fraction_of_them():
    """max_iters=10 ends training long before the 60-minute budget: the
    drop comes after iteration 5 (0.5 of 10), once, not at 30 minutes."""
    import mqformer  # noqa: F401
    from mqformer.engine import TimeBudgetHook
    hook = TimeBudgetHook(minutes=60, decay_at=0.5, decay_factor=0.1)
    runner, _ = fake_runner()
    runner.max_iters = 10
    hook.before_train(runner)
    hook.elapsed = lambda: 1.0
    lrs = []
    for _ in range(10):
        hook.after_train_iter(runner, 0)
        lrs.append(runner.optim_wrapper.param_groups[0]['lr'])
        runner.iter += 1
    assert lrs[:4] == [pytest.approx(1e-3)] * 4
    assert lrs[4:] == [pytest.approx(1e-4)] * 6


def test_learning_curve_checkpoints_once_each_and_after_a_resume(
        monkeypatch):
    """save_at=(0.5, 2) on a 1-minute budget: the 0.5 min mark is written
    once, with its iteration count; 2 min is the final checkpoint's; a
    resumed run does not write a mark again."""
    import mqformer  # noqa: F401
    from mqformer.engine import TimeBudgetHook
    from mqformer.engine import time_budget_hook as tbh
    clock = [0.0]
    monkeypatch.setattr(tbh.time, 'perf_counter', lambda: clock[0])
    hook = TimeBudgetHook(minutes=1, save_at=(2, 0.5))
    assert hook.save_at == [0.5]
    runner, _ = fake_runner()
    saved = []

    def save_checkpoint(work_dir, name, **kwargs):
        ckpt = {}
        hook.before_save_checkpoint(runner, ckpt)
        saved.append((name, ckpt['meta']['time_budget']))

    runner.work_dir, runner.save_checkpoint = 'wd', save_checkpoint
    hook.before_train(runner)
    for t in (10, 29, 31, 45):
        clock[0] = float(t)
        hook.after_train_iter(runner, 0)
        runner.iter += 1
    assert [n for n, _ in saved] == ['time_0.5min.pth']
    assert saved[0][1]['iters'] == 3 and saved[0][1]['saved'] == [0.5]
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    assert 'iters' not in ckpt['meta']['time_budget']
    resumed = TimeBudgetHook(minutes=1, save_at=(0.5, ))
    runner._resume = True
    resumed.after_load_checkpoint(runner, ckpt)
    hook = resumed
    resumed.before_train(runner)
    clock[0] += 5
    resumed.after_train_iter(runner, 0)
    assert len(saved) == 1


def test_decay_fraction_must_be_inside_the_budget():
    import mqformer  # noqa: F401
    from mqformer.engine import TimeBudgetHook
    with pytest.raises(ValueError, match='decay_at'):
        TimeBudgetHook(minutes=1, decay_at=1.5)


def test_a_resumed_run_continues_the_budget_and_never_drops_twice(
        monkeypatch):
    """The checkpoint saved after 40 s of a 60 s budget (rates dropped at
    30 s) resumes at 40 s: the rates stay, training stops 20 s later."""
    import mqformer  # noqa: F401
    from mqformer.engine import TimeBudgetHook
    from mqformer.engine import time_budget_hook as tbh
    clock = [100.0]
    monkeypatch.setattr(tbh.time, 'perf_counter', lambda: clock[0])
    hook = TimeBudgetHook(minutes=1, decay_at=0.5, decay_factor=0.1)
    runner, _ = fake_runner()
    hook.before_train(runner)
    clock[0] += 40
    hook.after_train_iter(runner, 0)
    assert runner.optim_wrapper.param_groups[0]['lr'] == pytest.approx(1e-4)
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    assert ckpt['meta']['time_budget'] == dict(elapsed=40.0, decayed=True)

    resumed = TimeBudgetHook(minutes=1, decay_at=0.5, decay_factor=0.1)
    runner2, _ = fake_runner(lr=1e-4)  # the optimizer state: already x0.1
    runner2._resume = True
    resumed.after_load_checkpoint(runner2, ckpt)
    clock[0] = 500.0  # a new process: a new clock origin
    resumed.before_train(runner2)
    clock[0] += 15
    resumed.after_train_iter(runner2, 0)
    assert runner2.optim_wrapper.param_groups[0]['lr'] == pytest.approx(1e-4)
    assert not runner2.train_loop.stop_training
    clock[0] += 6  # 40 + 21 s > 60 s
    resumed.after_train_iter(runner2, 0)
    assert runner2.train_loop.stop_training

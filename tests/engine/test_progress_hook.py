"""ProgressHook: a progress line per interval (not per iteration) off a
terminal, with the iteration, loss and the time left in the budget."""
import io
from types import SimpleNamespace

import torch


def test_lines_are_throttled_and_tell_iteration_loss_and_time_left():
    import mqformer  # noqa: F401
    from mqformer.engine import ProgressHook, TimeBudgetHook
    out = io.StringIO()
    hook = ProgressHook(name='MQ', interval_s=10, stream=out)
    budget = TimeBudgetHook(minutes=2)
    runner = SimpleNamespace(iter=0, hooks=[budget, hook], max_iters=100,
                             test_dataloader=[0] * 4)
    hook.before_train(runner)
    clock = [hook.start]
    import mqformer.engine.progress_hook as mod
    real = mod.time.perf_counter
    mod.time.perf_counter = lambda: clock[0]
    try:
        for i in range(60):  # one iteration per second for a minute
            clock[0] += 1
            runner.iter = i
            hook.after_train_iter(runner, i, outputs=dict(
                loss=torch.tensor(2.0 - i / 60)))
        hook.after_train(runner)
    finally:
        mod.time.perf_counter = real
    lines = out.getvalue().splitlines()
    assert 6 <= len(lines) <= 8  # every 10 s of 60, plus the last line
    assert lines[0].startswith('MQ train iter 10 loss 1.850')
    assert '1.8 min left' in lines[0]
    assert lines[-1] == 'MQ trained 59 iterations in 1.0 min'


def test_test_progress_counts_images():
    import mqformer  # noqa: F401
    from mqformer.engine import ProgressHook
    out = io.StringIO()
    hook = ProgressHook(name='eval', interval_s=3600, stream=out)
    runner = SimpleNamespace(hooks=[hook], test_dataloader=[0] * 4)
    hook.before_test(runner)
    for i in range(4):
        hook.after_test_iter(runner, i)
    assert out.getvalue().splitlines() == ['eval test 4/4 0 s']

"""One progress line for long runs that log nothing (the demo)."""
import sys
import time
from typing import Optional

from mmengine.hooks import Hook

from mmdet.registry import HOOKS


@HOOKS.register_module()
class ProgressHook(Hook):
    """Prints where a quiet run is: training iterations, the loss, elapsed
    time and the time left in a :class:`TimeBudgetHook` budget; test
    iterations out of the dataset's. On a terminal it rewrites one line in
    place; otherwise (CI logs, pipes) it prints a line every
    ``interval_s`` seconds, so a ten-minute run adds about twenty lines.

    Args:
        name (str): shown at the start of the line, e.g. the model.
        interval_s (float): seconds between lines when not on a terminal.
        stream: where to write; ``sys.stderr`` by default.
    """
    priority = 'VERY_LOW'

    def __init__(self, name: str = '', interval_s: float = 30.0,
                 stream=None) -> None:
        self.name = name
        self.interval_s = interval_s
        self.stream = stream
        self.start = None
        self.last = 0.0

    @property
    def out(self):
        return self.stream or sys.stderr

    def _write(self, text: str, final: bool = False) -> None:
        tty = getattr(self.out, 'isatty', lambda: False)()
        now = time.perf_counter()
        if tty:
            self.out.write('\r' + text.ljust(79) + ('\n' if final else ''))
        elif final or now - self.last >= self.interval_s:
            self.out.write(text + '\n')
        else:
            return
        self.last = now
        self.out.flush()

    def _budget(self, runner) -> Optional[float]:
        for hook in runner.hooks:
            if type(hook).__name__ == 'TimeBudgetHook':
                return hook.budget
        return None

    def before_train(self, runner) -> None:
        self.start = self.last = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        elapsed = time.perf_counter() - self.start
        loss = (outputs or {}).get('loss')
        text = (f'{self.name} train iter {runner.iter + 1}'
                + (f' loss {float(loss.detach()):.3f}' if loss is not None else '')
                + f' {elapsed / 60:.1f} min')
        budget = self._budget(runner)
        if budget is not None:
            text += f', {max(budget - elapsed, 0) / 60:.1f} min left'
        else:
            text += f' of {runner.max_iters} iters'
        self._write(text)

    def after_train(self, runner) -> None:
        elapsed = time.perf_counter() - self.start
        self._write(f'{self.name} trained {runner.iter} iterations in '
                    f'{elapsed / 60:.1f} min', final=True)

    def before_test(self, runner) -> None:
        self.start = self.last = time.perf_counter()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        total = len(runner.test_dataloader)
        self._write(f'{self.name} test {batch_idx + 1}/{total} '
                    f'{(time.perf_counter() - self.start):.0f} s',
                    final=batch_idx + 1 == total)

"""Stop training after a wall-time budget (equal-time comparisons, demos)."""
import time
from typing import Optional, Sequence

import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Ends an iteration-based training run once ``minutes`` of training
    wall time have passed (the loop's ``stop_training`` flag, as mmengine's
    ``EarlyStoppingHook`` uses it); checkpointing and the final validation
    then run as usual. In a distributed run rank 0's clock decides for every
    rank (broadcast each iteration), so no rank stops early and hangs the
    others in a collective.

    An iteration-count schedule cannot place a step decay when the number of
    iterations is unknown, so the hook can do it by time: at ``decay_at`` of
    the budget every learning rate is multiplied by ``decay_factor`` (mmdet's
    multi-step schedule, placed in wall time). Where the loop's
    ``max_iters`` ends training first, the drop comes at ``decay_at`` of
    those iterations instead (whichever fraction is reached first), so a run
    capped by iterations keeps the same schedule.

    The elapsed time and whether the rates were dropped travel with every
    checkpoint (``meta.time_budget``): a resumed run continues the budget
    where it was and never drops the rates a second time.

    With ``save_at`` the run also writes weights-only checkpoints
    ``time_<m>min.pth`` once ``m`` minutes have passed: the points of a
    learning curve from one run (the final checkpoint is the last point).

    Args:
        minutes (float): the training budget.
        decay_at (float, optional): fraction of the budget (0-1) at which the
            learning rates drop. None: no drop.
        decay_factor (float): the drop. Defaults to 0.1.
        save_at (sequence of float): minutes at which to write a
            checkpoint; marks at or past the budget are left to the final
            checkpoint.
    """
    priority = 'LOWEST'

    def __init__(self, minutes: float, decay_at: Optional[float] = None,
                 decay_factor: float = 0.1, save_at: Sequence[float] = ()
                 ) -> None:
        if decay_at is not None and not 0 < decay_at < 1:
            raise ValueError(f'TimeBudgetHook: decay_at must be in (0, 1), '
                             f'got {decay_at}')
        self.budget = minutes * 60
        self.decay_at = decay_at
        self.decay_factor = decay_factor
        self.save_at = sorted(float(m) for m in save_at
                              if float(m) * 60 < self.budget)
        self.saved = []  # the marks written so far
        self.decayed = False
        self.start = None
        self.spent = 0.0  # seconds of the budget used before a resume
        self._mark_iters = None

    @staticmethod
    def mark_name(minutes: float) -> str:
        """The file name of the checkpoint written at ``minutes``."""
        return f'time_{minutes:g}min.pth'

    def before_train(self, runner) -> None:
        self.start = time.perf_counter()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # rank 0 alone saves (mmengine's save_checkpoint is master-only):
        # its own clock, no collective
        elapsed = self.spent if self.start is None else \
            self.spent + time.perf_counter() - self.start
        state = dict(elapsed=elapsed, decayed=self.decayed)
        if self.save_at:
            state['saved'] = list(self.saved)
        if self._mark_iters is not None:  # a learning-curve point
            state['iters'] = self._mark_iters
        checkpoint.setdefault('meta', {})['time_budget'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get('time_budget')
        if runner._resume and state:
            self.spent = float(state['elapsed'])
            self.decayed = bool(state['decayed'])
            self.saved = list(state.get('saved', []))
            runner.logger.info(
                f'time budget: resumed after {self.spent / 60:.1f} of '
                f'{self.budget / 60:.1f} min'
                + (', learning rates already dropped' if self.decayed
                   else ''))

    def elapsed(self) -> float:
        """Seconds of training by rank 0's clock, counting the time before
        a resume."""
        elapsed = self.spent + time.perf_counter() - self.start
        if get_world_size() > 1:
            t = torch.tensor([elapsed], dtype=torch.float64)
            broadcast(t, src=0)
            elapsed = float(t.item())
        return elapsed

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        elapsed = self.elapsed()
        max_iters = getattr(runner, 'max_iters', None)
        if (self.decay_at is not None and not self.decayed
                and (elapsed >= self.decay_at * self.budget
                     or (max_iters and runner.iter + 1 >=
                         self.decay_at * max_iters))):
            self.decayed = True
            for group in runner.optim_wrapper.param_groups:
                group['lr'] *= self.decay_factor
            runner.logger.info(
                f'time budget: learning rates x{self.decay_factor} after '
                f'{runner.iter + 1} iterations')
        for mark in self.save_at:
            if mark not in self.saved and elapsed >= mark * 60:
                self.saved.append(mark)
                self._mark_iters = runner.iter + 1
                runner.save_checkpoint(
                    runner.work_dir, self.mark_name(mark),
                    save_optimizer=False, save_param_scheduler=False)
                self._mark_iters = None
                runner.logger.info(
                    f'time budget: {self.mark_name(mark)} after '
                    f'{runner.iter + 1} iterations')
        if elapsed >= self.budget and not runner.train_loop.stop_training:
            runner.logger.info(
                f'time budget of {self.budget / 60:.1f} min reached after '
                f'{runner.iter + 1} iterations')
            runner.train_loop.stop_training = True
            runner.message_hub.update_info('time_budget_iters',
                                           runner.iter + 1)

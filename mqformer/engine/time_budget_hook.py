"""Stop training after a wall-time budget (equal-time comparisons, demos)."""
import time

from mmengine.hooks import Hook

from mmdet.registry import HOOKS


@HOOKS.register_module()
class TimeBudgetHook(Hook):
    """Ends an iteration-based training run once ``minutes`` of training
    wall time have passed (the loop's ``stop_training`` flag, as mmengine's
    ``EarlyStoppingHook`` uses it); checkpointing and the final validation
    then run as usual.

    Args:
        minutes (float): the training budget.
    """
    priority = 'LOWEST'

    def __init__(self, minutes: float) -> None:
        self.budget = minutes * 60
        self.start = None

    def before_train(self, runner) -> None:
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        elapsed = time.perf_counter() - self.start
        if elapsed >= self.budget and not runner.train_loop.stop_training:
            runner.logger.info(
                f'time budget of {self.budget / 60:.1f} min reached after '
                f'{runner.iter + 1} iterations')
            runner.train_loop.stop_training = True
            runner.message_hub.update_info('time_budget_iters',
                                           runner.iter + 1)

"""Skip optimizer steps on non-finite losses; stop after too many in a row."""
import logging

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.optim import OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS

NONFINITE_TERMS = 'nonfinite_loss_terms'  # MessageHub runtime info key


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that never updates the weights with a NaN/inf loss.

    A non-finite loss skips the step (no backward, gradients zeroed, the
    weights and optimizer state untouched) and logs the iteration and the
    loss terms that were not finite (the model writes them to the message
    hub's ``nonfinite_loss_terms``; :class:`MQFormer` does). In a distributed
    run the ranks agree first (one all-reduce of a flag), so all skip
    together. ``max_consecutive`` skips in a row stop training with a clear
    error. Other models work too; their log names no terms.

    Args:
        max_consecutive (int): non-finite steps in a row before training
            stops. Defaults to 10.
    """

    def __init__(self, *args, max_consecutive: int = 10, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_consecutive = max_consecutive
        self.num_skipped = 0
        self.consecutive = 0

    def update_params(self, loss: torch.Tensor, step_kwargs=None,
                      zero_kwargs=None) -> None:
        finite = torch.isfinite(loss.detach()).all().float().reshape(1)
        if is_distributed():
            all_reduce(finite, op='min')
        if finite.item() == 1:
            self.consecutive = 0
            return super().update_params(loss, step_kwargs, zero_kwargs)
        self.num_skipped += 1
        self.consecutive += 1
        hub = MessageHub.get_current_instance()
        it = hub.get_info('iter', -1) + 1
        terms = hub.get_info(NONFINITE_TERMS) or []
        where = ', '.join(terms) if terms else (
            'on another rank' if torch.isfinite(loss.detach()).all() else
            'the total loss')
        self.zero_grad(**(zero_kwargs or {}))
        if self.consecutive >= self.max_consecutive:
            raise RuntimeError(
                f'training stopped at iteration {it}: {self.consecutive} '
                f'non-finite losses in a row (last: {where}); the weights '
                'were never updated with them. Lower the learning rate, '
                'enable clip_grad, or check the data of these iterations.')
        print_log(
            f'iteration {it}: non-finite loss ({where}): step skipped, '
            f'weights not updated ({self.consecutive} in a row, training '
            f'stops at {self.max_consecutive})', logger='current',
            level=logging.WARNING)

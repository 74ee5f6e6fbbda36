"""Skip optimizer steps on non-finite losses or gradients; stop after too
many in a row."""
import logging

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.optim import OptimWrapper

from mmdet.registry import OPTIM_WRAPPERS

NONFINITE_TERMS = 'nonfinite_loss_terms'  # MessageHub runtime info key


@OPTIM_WRAPPERS.register_module()
class NonFiniteGuardOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that never updates the weights with a NaN/inf loss
    or gradient.

    A non-finite loss skips the step (no backward, gradients zeroed, the
    weights and optimizer state untouched) and logs the iteration and the
    loss terms that were not finite (the model writes them to the message
    hub's ``nonfinite_loss_terms``; :class:`MQFormer` does). A finite loss
    whose gradients are not finite (e.g. a square root at 0) is skipped the
    same way after the backward, before clipping and the step. In a
    distributed run the ranks agree first (one all-reduce of a flag), so all
    skip together. ``max_consecutive`` skips in a row stop training with a
    clear error. Other models work too; their log names no terms.

    Args:
        max_consecutive (int): non-finite steps in a row before training
            stops. Defaults to 10.
    """

    def __init__(self, *args, max_consecutive: int = 10, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_consecutive = max_consecutive
        self.num_skipped = 0
        self.consecutive = 0

    @staticmethod
    def all_finite(tensors) -> bool:
        """Whether every tensor is finite on every rank."""
        tensors = [t.detach() for t in tensors]
        finite = torch.ones(1)
        if tensors:
            norms = torch.stack(torch._foreach_norm(tensors))
            finite = torch.isfinite(norms).all().float().reshape(1).cpu()
        if is_distributed():
            finite = finite.to(tensors[0].device if tensors else 'cpu')
            all_reduce(finite, op='min')
        return finite.item() == 1

    def update_params(self, loss: torch.Tensor, step_kwargs=None,
                      zero_kwargs=None) -> None:
        if self.all_finite([loss]):
            return super().update_params(loss, step_kwargs, zero_kwargs)
        hub = MessageHub.get_current_instance()
        terms = hub.get_info(NONFINITE_TERMS) or []
        where = ', '.join(terms) if terms else (
            'on another rank' if torch.isfinite(loss.detach()).all() else
            'the total loss')
        self.zero_grad(**(zero_kwargs or {}))
        self.skipped(f'non-finite loss ({where})')

    def step(self, **kwargs) -> None:
        if self.clip_grad_kwargs and self.grad_name == 'grad_norm':
            # the clip's total norm is finite exactly when every gradient
            # is (short of norms past ~1e19): one pass over the gradients
            if not self.all_finite([self.clip_grad_norm()]):
                return self.skipped('finite loss, non-finite gradients')
            self.consecutive = 0
            return self.optimizer.step(**kwargs)  # clipped already
        if not self.all_finite([p.grad for group in self.optimizer.param_groups
                                for p in group['params']
                                if p.grad is not None]):
            return self.skipped('finite loss, non-finite gradients')
        self.consecutive = 0
        super().step(**kwargs)

    def clip_grad_norm(self) -> torch.Tensor:
        """``OptimWrapper._clip_grad`` for norm clipping, returning the
        total norm (0-d) and logging it only when finite (a skipped step's
        gradients are zeroed, NaN-scaled or not)."""
        params = [p for group in self.optimizer.param_groups
                  for p in group['params']
                  if p.requires_grad and p.grad is not None]
        if not params:
            return torch.zeros(())
        norm = self.clip_func(params, **self.clip_grad_kwargs)
        if torch.isfinite(norm):
            self.message_hub.update_scalar('train/grad_norm', float(norm))
        return norm

    def skipped(self, what: str) -> None:
        """Count a skipped step, log it, stop after too many in a row."""
        self.num_skipped += 1
        self.consecutive += 1
        it = MessageHub.get_current_instance().get_info('iter', -1) + 1
        if self.consecutive >= self.max_consecutive:
            raise RuntimeError(
                f'training stopped at iteration {it}: {self.consecutive} '
                f'non-finite steps in a row (last: {what}); the weights '
                'were never updated with them. Lower the learning rate, '
                'enable clip_grad, or check the data of these iterations.')
        print_log(
            f'iteration {it}: {what}: step skipped, '
            f'weights not updated ({self.consecutive} in a row, training '
            f'stops at {self.max_consecutive})', logger='current',
            level=logging.WARNING)

"""Loaded by the multi-process tests through ``custom_imports``: a hook that
skews rank 1's clock for TimeBudgetHook and saves every rank's weights."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


@HOOKS.register_module()
class RankRecordHook(Hook):
    """``skew_rank1_clock``: rank 1's TimeBudgetHook start moves an hour
    back, so rank 1 alone believes the budget is spent (a rank that stops on
    its own clock would hang the others). After training each rank saves
    ``rank{r}.pth``: its parameters, its iteration count, how many
    parameters training changed, and the dtype of the backbone's output in
    the first training forward (bf16 under CPU autocast)."""

    def __init__(self, skew_rank1_clock: bool = False) -> None:
        self.skew = skew_rank1_clock
        self.dtypes = []

    def before_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        self.init = {k: v.detach().clone()
                     for k, v in model.named_parameters()}
        model.backbone.register_forward_hook(
            lambda m, i, o: self.dtypes.append(str(o[-1].dtype)))

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.skew and runner.iter == 0 and get_rank() == 1:
            for hook in runner.hooks:
                if type(hook).__name__ == 'TimeBudgetHook':
                    hook.start -= 3600

    def after_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(
            dict(iter=runner.iter, params=params,
                 num_changed=sum(not torch.equal(v, self.init[k])
                                 for k, v in params.items()),
                 num_params=len(params),
                 backbone_dtype=self.dtypes[0] if self.dtypes else None),
            osp.join(runner.work_dir, f'rank{get_rank()}.pth'))

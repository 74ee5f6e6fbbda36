"""Match costs for the Hungarian assigner."""
import torch.nn.functional as F
from torch import Tensor

from mmdet.models.task_modules import CrossEntropyLossCost
from mmdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class BinaryCrossEntropyLossCost(CrossEntropyLossCost):
    """mmdet's sigmoid :class:`CrossEntropyLossCost` for point-sampled mask
    logits, with the same value at a quarter of the cost.

    mmdet computes ``softplus(-x) @ t.T + softplus(x) @ (1 - t).T``: two
    log-sigmoid passes, two filled constant tensors and two products over the
    (N, P) logits. Since ``softplus(-x) = softplus(x) - x``, the sum is
    ``softplus(x).sum(1) - x @ t.T``, exact for soft targets too (bilinearly
    sampled GT masks). Matching runs once per decoder layer and image over
    every query (400 x 12544 points in the R50 configs), so this is a visible
    part of the training step.
    """

    def __init__(self, weight: float = 1.) -> None:
        super().__init__(use_sigmoid=True, weight=weight)

    def _binary_cross_entropy(self, cls_pred: Tensor,
                              gt_labels: Tensor) -> Tensor:
        """
        Args:
            cls_pred (Tensor): (N, P) or (N, 1, P...) logits.
            gt_labels (Tensor): (M, P...) targets in [0, 1].

        Returns:
            Tensor: (N, M) mean binary cross entropy over the P points.
        """
        x = cls_pred.flatten(1).float()
        t = gt_labels.flatten(1).float()
        return (F.softplus(x).sum(1, keepdim=True) - x @ t.T) / x.size(1)

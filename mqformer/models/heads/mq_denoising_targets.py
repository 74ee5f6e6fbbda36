"""MQHead's denoising targets (DINO's query layout) and the split of the
outputs into their denoising and matching parts."""
from typing import List, Optional, Tuple

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers import QuerySplit


class MQDenoisingTargets:
    """Denoising targets of :class:`MQHead` (a mixin of the head)."""

    def get_dn_targets(self, gts: List[InstanceData], dn_meta: dict,
                       num_groups: Optional[int] = None
                       ) -> Tuple[List[Tensor], List[Tensor]]:
        """Denoising assignment (DINO's layout): each group is ``max_gts``
        positive queries then ``max_gts`` negative ones; positive query i of
        every group reconstructs GT i, negatives get no target. With
        ``num_groups`` only the first that many groups are assigned.

        Returns:
            tuple: ``pos_inds[b]`` and ``pos_gt_inds[b]`` as in
            :meth:`get_targets`, indices into the denoising queries.
        """
        all_groups = dn_meta['num_denoising_groups']
        max_gts = dn_meta['num_denoising_queries'] // (2 * all_groups)
        num_groups = min(num_groups or all_groups, all_groups)
        pos_inds, pos_gt_inds = [], []
        for gt in gts:
            device = gt.labels.device
            t = torch.arange(len(gt.labels), device=device)
            groups = torch.arange(num_groups, device=device)
            pos_inds.append((t[None] + 2 * max_gts * groups[:, None]).flatten())
            pos_gt_inds.append(t.repeat(num_groups))
        return pos_inds, pos_gt_inds

    @staticmethod
    def split_outputs(cls_scores: Tensor, bbox_preds: Tensor,
                      mask_embeds: Tensor, query_split: QuerySplit
                      ) -> Tuple[Tuple[Tensor, ...], Tuple[Tensor, ...]]:
        """(L + 1, B, N, *) outputs -> (denoising part, matching part)."""
        dn = (cls_scores[:, :, query_split.dn], bbox_preds[:, :, query_split.dn],
              mask_embeds[:, :, query_split.dn])
        match = (cls_scores[:, :, query_split.matching],
                 bbox_preds[:, :, query_split.matching],
                 mask_embeds[:, :, query_split.matching])
        return dn, match

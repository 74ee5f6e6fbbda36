"""MQHead's mask losses: BCE + dice on the matched queries of every
prediction set at once, read at Mask2Former's uncertainty points or at every
pixel."""
import itertools
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.utils import reduce_mean
from ..layers.binary_point_sample import binary_point_sample


class MaskLosses:
    """Mask losses of :class:`MQHead` (a mixin of the head): reads its
    ``loss_mask``, ``loss_dice``, ``num_points``, ``oversample_ratio``,
    ``importance_sample_ratio`` and ``mask_loss_sampling``."""

    def pixel_points(self, logits: Tensor) -> Tensor:
        """Mask2Former's importance sampling with the pixel grid as the
        oversampled candidates: of the h*w pixels, n = min(num_points,
        h*w / oversample_ratio) are read, ``importance_sample_ratio`` of them
        the most uncertain pixels (logits nearest 0), the rest uniformly
        random ones (the same shares of candidates as Mask2Former's).

        Args:
            logits (Tensor): (M, h*w) mask logits.

        Returns:
            Tensor: (M, n) pixel indices, the uncertain ones first.
        """
        M, HW = logits.shape
        n = max(1, min(self.num_points, int(HW / self.oversample_ratio)))
        num_uncertain = int(self.importance_sample_ratio * n)
        with torch.no_grad():
            uncertain = (-logits.abs()).topk(num_uncertain, dim=1)[1]
            rand = torch.randint(0, HW, (M, n - num_uncertain),
                                 device=logits.device)
        return torch.cat([uncertain, rand], 1)

    def uncertain_points(self, logits: Tensor) -> Tensor:
        """Mask2Former's training points (mmdet's
        ``get_uncertain_point_coords_with_randomness``, the same random
        draws): ``num_points * oversample_ratio`` uniform points per mask,
        the ``importance_sample_ratio`` share of ``num_points`` with logits
        nearest 0 among them, then uniform ones. The uncertain points come
        in index order rather than by uncertainty (an unsorted top-k, half
        the cost on CPU: the losses average over the points).

        Args:
            logits (Tensor): (M, 1, h, w) mask logits.

        Returns:
            Tensor: (M, num_points, 2) xy in [0, 1].
        """
        M = len(logits)
        num_sampled = int(self.num_points * self.oversample_ratio)
        num_uncertain = int(self.importance_sample_ratio * self.num_points)
        coords = torch.rand(M, num_sampled, 2, device=logits.device)
        uncertainty = -point_sample(logits, coords)[:, 0].abs()
        idx = uncertainty.topk(num_uncertain, dim=1, sorted=False)[1]
        coords = coords.gather(1, idx[..., None].expand(-1, -1, 2))
        rand = torch.rand(M, self.num_points - num_uncertain, 2,
                          device=logits.device)
        return torch.cat([coords, rand], 1)

    def loss_masks(self, mask_sets: List[tuple], mask_features: Tensor,
                   gts: List[InstanceData]) -> Dict[str, Tensor]:
        """BCE + dice on the matched queries of images with masks, for
        several prediction sets at once.

        Only the matched queries' masks (M, h, w) are built, image by image
        from ``mask_embeds`` (B, N_s, C) and ``mask_features`` (B, C, h, w);
        Mask2Former's uncertainty point sampling runs once over all of them
        (``mask_loss_sampling='dense'``: every pixel, ``'pixels'``:
        :meth:`pixel_points`, both against the GT masks area-averaged to
        (h, w)) and each set's losses are its masks'
        share, averaged over its own number of masks (as if every set were
        computed alone).

        Args:
            mask_sets (list[tuple]): ``(prefix, mask_embeds, pos_inds,
                pos_gt_inds)`` per set.
        """
        on_grid = self.mask_loss_sampling in ('dense', 'pixels')
        S = len(mask_sets)
        # every set's embeddings side by side (B, sum N_s, C): one index per
        # image picks the matched queries of all sets
        all_embeds = torch.cat([e for _, e, _, _ in mask_sets], 1)
        offsets = [0, *itertools.accumulate(e.shape[1]
                                            for _, e, _, _ in mask_sets)]
        # each image's GT masks once; the matched queries index them
        preds, gt_masks, gt_index, set_ids = [], [], [], []
        num_gts = 0
        for b, (gt, feat) in enumerate(zip(gts, mask_features)):
            if 'masks' not in gt:
                continue
            rows, tgt = [], []
            for s, (_, _, pos_inds, pos_gt_inds) in enumerate(mask_sets):
                rows.append(pos_inds[b] + offsets[s])
                tgt.append(pos_gt_inds[b])
                set_ids.append(torch.full_like(pos_inds[b], s))
            preds.append(torch.einsum('nc,chw->nhw',
                                      all_embeds[b, torch.cat(rows)], feat))
            masks = gt.masks
            if on_grid:
                masks = F.adaptive_avg_pool2d(masks[None].float(),
                                              feat.shape[-2:])[0]
            gt_masks.append(masks)
            gt_index.append(torch.cat(tgt) + num_gts)
            num_gts += len(masks)
        num = sum(len(p) for p in preds)
        set_ids = torch.cat(set_ids) if set_ids else all_embeds.new_zeros(
            0, dtype=torch.long)
        # every rank joins this collective, with or without masks in its batch
        counts = torch.bincount(set_ids, minlength=S).float()
        avgs = reduce_mean(counts).clamp(min=1)
        if num == 0:
            # zero-weighted, so the mask branches take part in every backward
            # (DDP needs it when a rank's batch has no masks: VG, Objects365)
            anchor = (all_embeds.sum() + mask_features.sum()) * 0
            return {f'{prefix}{k}': anchor for prefix, *_ in mask_sets
                    for k in ('loss_mask', 'loss_dice')}
        preds, gt_index = torch.cat(preds), torch.cat(gt_index)
        gt_masks = torch.cat(gt_masks)  # (G, H, W), every image's
        if self.mask_loss_sampling == 'dense':
            point_preds = preds.flatten(1)
            point_targets = gt_masks.flatten(1)[gt_index]
        elif self.mask_loss_sampling == 'pixels':
            idx = self.pixel_points(preds.flatten(1))
            point_preds = preds.flatten(1).gather(1, idx)
            point_targets = gt_masks.flatten(1)[gt_index].gather(1, idx)
        else:
            with torch.no_grad():
                points = self.uncertain_points(preds.unsqueeze(1))
                point_targets = binary_point_sample(gt_masks, gt_index,
                                                    points)
            point_preds = point_sample(preds.unsqueeze(1), points).squeeze(1)
        dice = self.loss_dice(point_preds, point_targets,
                              reduction_override='none')  # (M, )
        bce = self.loss_mask(point_preds, point_targets,
                             reduction_override='none').mean(1)  # (M, )
        per_set_dice = dice.new_zeros(S).index_add(0, set_ids, dice) / avgs
        per_set_bce = bce.new_zeros(S).index_add(0, set_ids, bce) / avgs
        losses = {}
        for (prefix, *_), bce_s, dice_s in zip(mask_sets, per_set_bce.unbind(),
                                               per_set_dice.unbind()):
            losses[f'{prefix}loss_mask'] = bce_s
            losses[f'{prefix}loss_dice'] = dice_s
        return losses

"""MQHead's joint Hungarian matching: the ground truth of each image and the
assignment of every prediction set (decoder layers, encoder proposals) at
once, with one draw of points shared by the sets."""
from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from mmdet.structures.mask import BitmapMasks, mask2bbox
from .mq_fusion_head import text_is_thing


class PredSet(NamedTuple):
    """One set of query predictions of a batch (a decoder layer's, the
    encoder proposals'): ``cls`` (B, N, T) logits, ``boxes`` (B, N, 4)
    normalised cxcywh, ``mask_embeds`` (B, N, C) or ``None`` (no masks),
    ``is_learnable`` (N, ) bool, the query type (``None``: all
    conditional, as the encoder proposals)."""
    cls: Tensor
    boxes: Tensor
    mask_embeds: Optional[Tensor]
    is_learnable: Optional[Tensor] = None


class MQMatching:
    """Targets of :class:`MQHead` (a mixin of the head): reads its
    ``assigner`` / ``box_assigner`` (mmdet ``HungarianAssigner``s, with and
    without the mask costs), ``num_points`` and ``needs_is_thing``
    (``decouple_stuff_boxes`` or a :class:`QueryRoleCost`)."""

    def preprocess_gt(self, batch_data_samples: SampleList
                      ) -> Tuple[List[InstanceData], List[dict]]:
        """Ground truth per image: ``labels`` (indices into the image's texts),
        ``bboxes`` (xyxy pixels, derived from masks where missing),
        ``masks`` (bool tensor at the padded input size; absent for
        detection-only images) and, with ``needs_is_thing``,
        ``is_thing`` (M, ) bool from the sample's ``text_is_thing`` (all True
        where the sample has none)."""
        gts, metas = [], []
        for sample in batch_data_samples:
            gt = sample.gt_instances
            meta = sample.metainfo
            labels = gt.labels.long()
            masks = gt.get('masks', None)
            if masks is not None and meta.get('with_mask', True):
                if isinstance(masks, BitmapMasks) or hasattr(masks, 'pad'):
                    masks = masks.pad(meta['batch_input_shape'], pad_val=0)
                    masks = masks.to_tensor(torch.bool, labels.device)
                else:
                    masks = torch.as_tensor(masks, device=labels.device).bool()
                    h, w = meta['batch_input_shape']
                    masks = F.pad(masks, (0, w - masks.shape[-1],
                                          0, h - masks.shape[-2]))
            else:
                masks = None
            bboxes = gt.get('bboxes', None)
            if bboxes is not None and len(bboxes) != len(labels):
                raise ValueError(
                    f'{meta.get("img_path", "sample")}: gt_instances has '
                    f'{len(bboxes)} boxes for {len(labels)} labels')
            if bboxes is None:
                if masks is None:
                    raise ValueError(
                        f'{meta.get("img_path", "sample")}: instances need '
                        'boxes or masks')
                bboxes = mask2bbox(masks)
            if hasattr(bboxes, 'tensor'):
                bboxes = bboxes.tensor
            gt_inst = InstanceData(labels=labels, bboxes=bboxes.float())
            if masks is not None:
                gt_inst.masks = masks
            if self.needs_is_thing:
                gt_inst.is_thing = self.gt_is_thing(labels, meta)
            gts.append(gt_inst)
            metas.append(meta)
        return gts, metas

    @staticmethod
    def gt_is_thing(labels: Tensor, meta: dict) -> Tensor:
        """(M, ) bool: the thing/stuff flag of each ground truth's text."""
        if meta.get('text_is_thing') is None:  # all things, said once
            text_is_thing(meta, 0, 'matching (decouple_stuff_boxes, '
                                   'QueryRoleCost)')
            return torch.ones_like(labels, dtype=torch.bool)
        flags = meta['text_is_thing']
        if len(labels) and int(labels.max()) >= len(flags):
            raise ValueError(
                f'{meta.get("img_path", "sample")}: text_is_thing has '
                f'{len(flags)} flags, a label is {int(labels.max())}')
        return torch.as_tensor(list(flags), dtype=torch.bool,
                               device=labels.device)[labels]

    def get_targets(self, pred_sets: List[PredSet], gts: List[InstanceData],
                    metas: List[dict], mask_features: Optional[Tensor]
                    ) -> List[Tuple[List[Tensor], List[Tensor]]]:
        """Hungarian assignment of every matching prediction set.

        Args:
            pred_sets (list[PredSet]): ``(cls (B, N, T), boxes (B, N, 4),
                mask_embeds (B, N, C) | None)`` per set (each decoder layer,
                the encoder proposals).
            mask_features (Tensor | None): (B, C, h, w).

        Returns:
            list[tuple]: per set, ``pos_inds[b]`` (P_b, ) and
            ``pos_gt_inds[b]`` (P_b, ): query ``pos_inds[b][i]`` of image b
            is matched to GT ``pos_gt_inds[b][i]``.
        """
        out = [([], []) for _ in pred_sets]
        with torch.no_grad():  # the assignment needs no gradient
            for b, (gt, meta) in enumerate(zip(gts, metas)):
                per_set = self._get_targets_multi_set(
                    [s.cls[b] for s in pred_sets],
                    [s.boxes[b] for s in pred_sets],
                    [None if s.mask_embeds is None else s.mask_embeds[b]
                     for s in pred_sets], gt, meta,
                    None if mask_features is None else mask_features[b],
                    [s.is_learnable for s in pred_sets])
                for (pos, pos_gt), (p, g) in zip(out, per_set):
                    pos.append(p)
                    pos_gt.append(g)
        return out

    def _get_targets_single(self, cls_score: Tensor, bbox_pred: Tensor,
                            mask_embed: Optional[Tensor],
                            gt_instances: InstanceData, img_meta: dict,
                            mask_feature: Optional[Tensor] = None
                            ) -> Tuple[Tensor, Tensor]:
        """Match one prediction set of one image; see
        :meth:`_get_targets_multi_set`."""
        return self._get_targets_multi_set([cls_score], [bbox_pred],
                                           [mask_embed], gt_instances,
                                           img_meta, mask_feature)[0]

    def _get_targets_multi_set(self, cls_scores: List[Tensor],
                               bbox_preds: List[Tensor],
                               mask_embeds: List[Optional[Tensor]],
                               gt_instances: InstanceData, img_meta: dict,
                               mask_feature: Optional[Tensor] = None,
                               is_learnable: Optional[List[Optional[Tensor]]]
                               = None) -> List[Tuple[Tensor, Tensor]]:
        """Match several prediction sets (e.g. every decoder layer) of one
        image to its ground truth.

        Mask costs use ``num_points`` random points, drawn once per image and
        shared by the sets, so the mask features and the GT masks are sampled
        once. Bilinear sampling is linear, so a query's mask logits there are
        its ``mask_embed`` times the sampled mask features: the (N, h, w)
        masks are never built for matching.

        Args:
            cls_scores (list[Tensor]): (N_s, T) logits (padding texts
                included) per set.
            bbox_preds (list[Tensor]): (N_s, 4) normalised cxcywh per set.
            mask_embeds (list[Tensor | None]): (N_s, C) mask embeddings.
            gt_instances (InstanceData): see :meth:`preprocess_gt`.
            mask_feature (Tensor | None): (C, h, w) per-pixel features.
            is_learnable (list[Tensor | None], optional): (N_s, ) query types
                per set (for :class:`QueryRoleCost`).

        Returns:
            list[tuple]: per set ``pos_inds`` (P, ) and ``pos_gt_inds`` (P, ).
        """
        num_texts = img_meta['num_texts']
        gt_masks = gt_instances.get('masks', None)
        img_h, img_w = img_meta['img_shape'][:2]
        factor = bbox_preds[0].new_tensor([img_w, img_h, img_w, img_h])
        gt = InstanceData(labels=gt_instances.labels,
                          bboxes=gt_instances.bboxes)
        if 'is_thing' in gt_instances:
            gt.is_thing = gt_instances.is_thing
        gt_masked = gt.clone()
        feat = None
        if gt_masks is not None and any(e is not None for e in mask_embeds):
            points = torch.rand((1, self.num_points, 2),
                                device=bbox_preds[0].device)
            feat = point_sample(mask_feature[None], points)[0]  # (C, P)
            # every GT at the same points: the masks as channels of one map
            gt_masked.masks = point_sample(gt_masks[None].float(),
                                           points)[0]  # (G, P)
        results = []
        for cls_score, bbox_pred, mask_embed, learnable in zip(
                cls_scores, bbox_preds, mask_embeds,
                is_learnable or [None] * len(cls_scores)):
            pred = InstanceData(
                scores=cls_score[:, :num_texts],
                bboxes=bbox_cxcywh_to_xyxy(bbox_pred) * factor)
            if learnable is not None:
                pred.is_learnable = learnable
            if feat is not None and mask_embed is not None:
                pred.masks = mask_embed @ feat
                result = self.assigner.assign(pred, gt_masked,
                                              img_meta=img_meta)
            else:
                result = self.box_assigner.assign(pred, gt, img_meta=img_meta)
            pos_inds = torch.nonzero(result.gt_inds > 0).squeeze(-1)
            results.append((pos_inds, result.gt_inds[pos_inds] - 1))
        return results

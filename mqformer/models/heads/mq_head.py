"""MQHead: text-logit, box and mask predictions for every decoder layer, joint
Hungarian matching over all queries, and the MaskDINO-style losses."""
import copy
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.model import BaseModule, ModuleList, bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet.models.layers.transformer.utils import MLP
from mmdet.models.utils import (get_uncertain_point_coords_with_randomness,
                                multi_apply)
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.structures.mask import BitmapMasks, mask2bbox
from mmdet.utils import ConfigType, OptConfigType, reduce_mean

MASK_COSTS = ('DiceCost', 'CrossEntropyLossCost')


@MODELS.register_module()
class MQHead(BaseModule):
    """Prediction heads and losses of MQ-Former.

    Every query (denoising, conditional and learnable alike) gets

    - class logits over the image's texts: ``q' @ t^T / sqrt(C) + bias`` with
      ``q' = cls_embed(q)`` and ``t`` the projected text embeddings;
    - a box: the decoder's refined reference box (sigmoid cxcywh);
    - a mask: ``mask_embed(q) @ mask_features`` at 1/4 resolution.

    Predictions are made on the encoder's top-k proposals (class + box), on the
    queries before the first decoder layer and after every layer (deep
    supervision). Matching is mmdet's ``HungarianAssigner`` over all matching
    queries jointly; images without masks (detection-only) use the same costs
    minus the mask costs and skip the mask losses.

    Args:
        num_decoder_layers (int): decoder layers; ``reg_branches`` has one more
            (the last refines the encoder proposals).
        embed_dims (int): query width C.
        num_points (int): points sampled per mask for matching and losses.
        oversample_ratio, importance_sample_ratio (float): Mask2Former's
            uncertainty point sampling for the mask losses.
        loss_cls, loss_bbox, loss_iou, loss_mask, loss_dice (dict): losses;
            defaults follow MaskDINO (class 4, box 5, giou 2, mask 5, dice 5).
        train_cfg (dict): ``assigner`` (a ``HungarianAssigner`` config).
        test_cfg (dict): unused here (see :class:`MQFusionHead`).
    """

    def __init__(self,
                 num_decoder_layers: int = 9,
                 embed_dims: int = 256,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 loss_cls: ConfigType = dict(
                     type='FocalLoss',
                     use_sigmoid=True,
                     gamma=2.0,
                     alpha=0.25,
                     loss_weight=4.0),
                 loss_bbox: ConfigType = dict(type='L1Loss', loss_weight=5.0),
                 loss_iou: ConfigType = dict(type='GIoULoss', loss_weight=2.0),
                 loss_mask: ConfigType = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     reduction='mean',
                     loss_weight=5.0),
                 loss_dice: ConfigType = dict(
                     type='DiceLoss',
                     use_sigmoid=True,
                     activate=True,
                     reduction='mean',
                     naive_dice=True,
                     eps=1.0,
                     loss_weight=5.0),
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_decoder_layers = num_decoder_layers
        self.embed_dims = embed_dims
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.train_cfg = train_cfg or {}
        self.test_cfg = test_cfg or {}
        if 'assigner' in self.train_cfg:
            self.assigner = TASK_UTILS.build(self.train_cfg['assigner'])
            box_cfg = copy.deepcopy(self.train_cfg['assigner'])
            box_cfg['match_costs'] = [
                c for c in box_cfg['match_costs'] if c['type'] not in MASK_COSTS
            ]
            self.box_assigner = TASK_UTILS.build(box_cfg)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_iou = MODELS.build(loss_iou)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self._init_layers()

    def _init_layers(self) -> None:
        C = self.embed_dims
        self.cls_embed = nn.Linear(C, C)
        self.logit_bias = nn.Parameter(torch.zeros(1))
        self.reg_branches = ModuleList(
            [MLP(C, C, 4, 3) for _ in range(self.num_decoder_layers + 1)])
        self.mask_embed = MLP(C, C, C, 3)

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.constant_(self.logit_bias, bias_init_with_prob(0.01))
        for branch in self.reg_branches:
            nn.init.zeros_(branch.layers[-1].weight)
            nn.init.zeros_(branch.layers[-1].bias)

    # ------------------------------------------------------------- predictions
    def text_logits(self, query: Tensor, text_embeds: Tensor) -> Tensor:
        """(..., B, N, C) queries x (B, T, C) texts -> (..., B, N, T) logits."""
        q = self.cls_embed(query)
        return torch.einsum('...bnc,btc->...bnt', q, text_embeds) / \
            math.sqrt(self.embed_dims) + self.logit_bias

    def forward(self, hidden_states: Tensor, references: Tensor,
                mask_features: Tensor, text_embeds: Tensor,
                **kwargs) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            hidden_states (Tensor): normed queries before the first layer and
                after every layer, (L + 1, B, N, C).
            references (Tensor): their boxes, normalised cxcywh (L + 1, B, N, 4).
            mask_features (Tensor): per-pixel features (B, C, H/4, W/4).
            text_embeds (Tensor): projected text embeddings (B, T, C).

        Returns:
            tuple: class logits (L + 1, B, N, T), boxes (L + 1, B, N, 4) and
            mask logits (L + 1, B, N, H/4, W/4).
        """
        cls_scores = self.text_logits(hidden_states, text_embeds)
        masks = torch.einsum('lbnc,bchw->lbnhw',
                             self.mask_embed(hidden_states), mask_features)
        return cls_scores, references, masks

    # ------------------------------------------------------------- targets
    def preprocess_gt(self, batch_data_samples: SampleList
                      ) -> Tuple[List[InstanceData], List[dict]]:
        """Ground truth per image: ``labels`` (indices into the image's texts),
        ``bboxes`` (xyxy pixels, derived from masks where missing) and
        ``masks`` (bool tensor at the padded input size; absent for
        detection-only images)."""
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
            if bboxes is None or len(bboxes) != len(labels):
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
            gts.append(gt_inst)
            metas.append(meta)
        return gts, metas

    def _get_targets_single(self, cls_score: Tensor, bbox_pred: Tensor,
                            mask_embed: Optional[Tensor],
                            gt_instances: InstanceData, img_meta: dict,
                            mask_feature: Optional[Tensor] = None
                            ) -> Tuple[Tensor, ...]:
        """Match one image's queries to its ground truth.

        Mask costs use ``num_points`` random points. Bilinear sampling is
        linear, so the queries' mask logits there are ``mask_embed`` times
        the mask features sampled at the points: the (N, h, w) masks are
        never built for matching.

        Args:
            cls_score (Tensor): (N, T) logits (padding texts included).
            bbox_pred (Tensor): (N, 4) normalised cxcywh.
            mask_embed (Tensor | None): (N, C) mask embeddings.
            gt_instances (InstanceData): see :meth:`preprocess_gt`.
            mask_feature (Tensor | None): (C, h, w) per-pixel features.

        Returns:
            tuple: ``pos_inds`` (P, ), ``pos_gt_inds`` (P, ) into the GT.
        """
        num_texts = img_meta['num_texts']
        gt_masks = gt_instances.get('masks', None)
        use_masks = mask_embed is not None and gt_masks is not None
        img_h, img_w = img_meta['img_shape']
        factor = bbox_pred.new_tensor([img_w, img_h, img_w, img_h])
        pred = InstanceData(
            scores=cls_score[:, :num_texts],
            bboxes=bbox_cxcywh_to_xyxy(bbox_pred) * factor)
        gt = InstanceData(labels=gt_instances.labels,
                          bboxes=gt_instances.bboxes)
        if use_masks:
            points = torch.rand((1, self.num_points, 2),
                                device=cls_score.device)
            feat = point_sample(mask_feature[None], points)[0]  # (C, P)
            pred.masks = mask_embed @ feat
            gt.masks = point_sample(
                gt_masks.unsqueeze(1).float(),
                points.repeat(len(gt_masks), 1, 1)).squeeze(1)
        assigner = self.assigner if use_masks else self.box_assigner
        result = assigner.assign(pred, gt, img_meta=img_meta)
        pos_inds = torch.nonzero(result.gt_inds > 0).squeeze(-1)
        return pos_inds, result.gt_inds[pos_inds] - 1

    # ------------------------------------------------------------- losses
    def loss(self, hidden_states: Tensor, references: Tensor,
             mask_features: Tensor, text_embeds: Tensor, text_mask: Tensor,
             batch_data_samples: SampleList,
             enc_outputs_class: Optional[Tensor] = None,
             enc_outputs_coord: Optional[Tensor] = None,
             dn_meta: Optional[dict] = None) -> Dict[str, Tensor]:
        """All MQ-Former losses.

        Args:
            hidden_states, references, mask_features, text_embeds: as in
                :meth:`forward`; the first ``dn_meta['num_denoising_queries']``
                queries are denoising queries.
            text_mask (Tensor): (B, T) True for real texts.
            enc_outputs_class (Tensor, optional): top-k encoder proposal
                logits (B, K, T).
            enc_outputs_coord (Tensor, optional): their boxes (B, K, 4).
            dn_meta (dict, optional): from the denoising query generator.

        Returns:
            dict: ``loss_cls``/``loss_bbox``/``loss_iou``/``loss_mask``/
            ``loss_dice`` of the last layer, ``d{i}.*`` of the earlier ones
            (``d0`` is before the first layer), ``enc_loss_*`` and ``dn_*``.
        """
        gts, metas = self.preprocess_gt(batch_data_samples)
        for meta, m in zip(metas, text_mask):
            meta['num_texts'] = int(m.sum())
        # the (L + 1, B, N, h, w) masks are never built in training: matching
        # samples points, the losses need only the matched queries' masks
        cls_scores = self.text_logits(hidden_states, text_embeds)
        bboxes, mask_embeds = references, self.mask_embed(hidden_states)
        num_dn = dn_meta['num_denoising_queries'] if dn_meta else 0
        losses = {}
        num_layers = len(cls_scores)
        for i in range(num_layers):
            prefix = '' if i == num_layers - 1 else f'd{i}.'
            layer_losses = self.loss_matching(cls_scores[i][:, num_dn:],
                                              bboxes[i][:, num_dn:],
                                              mask_embeds[i][:, num_dn:],
                                              text_mask, gts, metas,
                                              mask_features)
            losses.update({prefix + k: v for k, v in layer_losses.items()})
            if num_dn > 0:
                dn_losses = self.loss_dn(cls_scores[i][:, :num_dn],
                                         bboxes[i][:, :num_dn],
                                         mask_embeds[i][:, :num_dn],
                                         text_mask, gts, metas, dn_meta,
                                         mask_features)
                losses.update(
                    {f'{prefix}dn_{k}': v
                     for k, v in dn_losses.items()})
        if enc_outputs_class is not None:
            enc_losses = self.loss_matching(enc_outputs_class,
                                            enc_outputs_coord, None,
                                            text_mask, gts, metas)
            losses.update({f'enc_{k}': v for k, v in enc_losses.items()})
        return losses

    def loss_matching(self, cls_scores: Tensor, bbox_preds: Tensor,
                      mask_embeds: Optional[Tensor], text_mask: Tensor,
                      gts: List[InstanceData], metas: List[dict],
                      mask_features: Optional[Tensor] = None
                      ) -> Dict[str, Tensor]:
        """Hungarian-matched losses of one prediction set.

        Args:
            cls_scores (Tensor): (B, N, T). bbox_preds (Tensor): (B, N, 4).
            mask_embeds (Tensor | None): (B, N, C) mask embeddings.
            mask_features (Tensor | None): (B, C, h, w).
        """
        B = len(gts)
        with torch.no_grad():  # the assignment needs no gradient
            no_masks = [None] * B
            pos_inds, pos_gt_inds = multi_apply(
                self._get_targets_single, list(cls_scores), list(bbox_preds),
                no_masks if mask_embeds is None else list(mask_embeds), gts,
                metas, no_masks if mask_embeds is None else list(mask_features))
        return self.loss_by_assignment(cls_scores, bbox_preds, mask_embeds,
                                       text_mask, gts, metas, pos_inds,
                                       pos_gt_inds, mask_features)

    def loss_by_assignment(self, cls_scores: Tensor, bbox_preds: Tensor,
                           mask_embeds: Optional[Tensor], text_mask: Tensor,
                           gts: List[InstanceData], metas: List[dict],
                           pos_inds: List[Tensor],
                           pos_gt_inds: List[Tensor],
                           mask_features: Optional[Tensor] = None
                           ) -> Dict[str, Tensor]:
        """Focal, L1, GIoU, point-sampled BCE and dice losses for given
        query-to-GT assignments (``pos_inds[b]`` query i of image b is matched
        to GT ``pos_gt_inds[b][i]``). ``mask_embeds`` (B, N, C) and
        ``mask_features`` (B, C, h, w) give the masks."""
        B, N, T = cls_scores.shape
        cls_targets = cls_scores.new_zeros(B, N, T)
        for b in range(B):
            cls_targets[b, pos_inds[b], gts[b].labels[pos_gt_inds[b]]] = 1
        cls_weights = text_mask[:, None, :].expand(B, N, T).float()
        num_pos = sum(len(p) for p in pos_inds)
        avg = reduce_mean(cls_scores.new_tensor([num_pos])).clamp(min=1).item()
        losses = dict(
            loss_cls=self.loss_cls(
                cls_scores.reshape(-1, T),
                cls_targets.reshape(-1, T),
                cls_weights.reshape(-1, T),
                avg_factor=avg))

        # boxes
        pos_boxes, tgt_boxes, factors = [], [], []
        for b in range(B):
            img_h, img_w = metas[b]['img_shape']
            f = bbox_preds.new_tensor([img_w, img_h, img_w, img_h])
            pos_boxes.append(bbox_preds[b, pos_inds[b]])
            tgt_boxes.append(gts[b].bboxes[pos_gt_inds[b]] / f)
            factors.append(f.expand(len(pos_inds[b]), 4))
        pos_boxes = torch.cat(pos_boxes)
        tgt_boxes = torch.cat(tgt_boxes)
        factors = torch.cat(factors)
        if len(pos_boxes) == 0:
            zero = bbox_preds.sum() * 0
            losses.update(loss_bbox=zero, loss_iou=zero)
        else:
            losses['loss_bbox'] = self.loss_bbox(
                pos_boxes, bbox_xyxy_to_cxcywh(tgt_boxes), avg_factor=avg)
            losses['loss_iou'] = self.loss_iou(
                bbox_cxcywh_to_xyxy(pos_boxes) * factors,
                tgt_boxes * factors,
                avg_factor=avg)
        if mask_embeds is not None:
            losses.update(
                self.loss_masks(mask_embeds, mask_features, gts, pos_inds,
                                pos_gt_inds))
        return losses

    def loss_masks(self, mask_embeds: Tensor, mask_features: Tensor,
                   gts: List[InstanceData], pos_inds: List[Tensor],
                   pos_gt_inds: List[Tensor]) -> Dict[str, Tensor]:
        """Point-sampled BCE + dice on matched queries of images with masks;
        only their masks (P, h, w) are built, from ``mask_embeds`` (B, N, C)
        and ``mask_features`` (B, C, h, w)."""
        preds, targets = [], []
        for b, gt in enumerate(gts):
            if 'masks' not in gt:
                continue
            preds.append(torch.einsum('nc,chw->nhw',
                                      mask_embeds[b, pos_inds[b]],
                                      mask_features[b]))
            targets.append(gt.masks[pos_gt_inds[b]])
        num = sum(len(p) for p in preds)
        avg = reduce_mean(mask_embeds.new_tensor([num])).clamp(min=1).item()
        if num == 0:
            zero = mask_embeds.sum() * 0
            return dict(loss_mask=zero, loss_dice=zero)
        preds, targets = torch.cat(preds), torch.cat(targets)
        with torch.no_grad():
            points = get_uncertain_point_coords_with_randomness(
                preds.unsqueeze(1), None, self.num_points,
                self.oversample_ratio, self.importance_sample_ratio)
            point_targets = point_sample(targets.unsqueeze(1).float(),
                                         points).squeeze(1)
        point_preds = point_sample(preds.unsqueeze(1), points).squeeze(1)
        loss_dice = self.loss_dice(point_preds, point_targets, avg_factor=avg)
        loss_mask = self.loss_mask(
            point_preds.reshape(-1),
            point_targets.reshape(-1),
            avg_factor=avg * self.num_points)
        return dict(loss_mask=loss_mask, loss_dice=loss_dice)

    def loss_dn(self, cls_scores: Tensor, bbox_preds: Tensor,
                mask_embeds: Tensor, text_mask: Tensor,
                gts: List[InstanceData], metas: List[dict],
                dn_meta: dict,
                mask_features: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Denoising losses: positive DN queries reconstruct their GT (class,
        box, mask); negative ones are pushed to no text. Layout as in DINO:
        each group is ``max_gts`` positives then ``max_gts`` negatives."""
        num_groups = dn_meta['num_denoising_groups']
        max_gts = dn_meta['num_denoising_queries'] // (2 * num_groups)
        pos_inds, pos_gt_inds = [], []
        for gt in gts:
            n = len(gt.labels)
            t = torch.arange(n, device=cls_scores.device)
            groups = torch.arange(num_groups, device=cls_scores.device)
            pos_inds.append((t[None] + 2 * max_gts * groups[:, None]).flatten())
            pos_gt_inds.append(t.repeat(num_groups))
        return self.loss_by_assignment(cls_scores, bbox_preds, mask_embeds,
                                       text_mask, gts, metas, pos_inds,
                                       pos_gt_inds, mask_features)

    # ------------------------------------------------------------- inference
    def predict(self, hidden_states: Tensor, references: Tensor,
                mask_features: Tensor, text_embeds: Tensor,
                **kwargs) -> Tuple[Tensor, Tensor, Tensor]:
        """Last-layer predictions: class logits (B, N, T), boxes (B, N, 4)
        and mask logits (B, N, H/4, W/4); :class:`MQFusionHead` turns them
        into task outputs."""
        cls_scores, bboxes, masks = self(hidden_states[-1:], references[-1:],
                                         mask_features, text_embeds)
        return cls_scores[0], bboxes[0], masks[0]

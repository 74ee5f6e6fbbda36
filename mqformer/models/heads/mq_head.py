"""MQHead: text-logit, box and mask predictions for every decoder layer, joint
Hungarian matching over all queries, and the MaskDINO-style losses."""
import copy
import itertools
import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule, ModuleList, bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet.models.layers.transformer.utils import MLP
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.utils import ConfigType, OptConfigType, reduce_mean
from ..layers import QuerySplit
from ..task_modules import thing_box_costs
from .mask_losses import MaskLosses
from .mq_denoising_targets import MQDenoisingTargets
from .mq_matching import MQMatching, PredSet

MASK_COSTS = ('DiceCost', 'CrossEntropyLossCost',
              'BinaryCrossEntropyLossCost')


@MODELS.register_module()
class MQHead(MQMatching, MQDenoisingTargets, MaskLosses, BaseModule):
    """Prediction heads and losses of MQ-Former.

    Every query (denoising, conditional and learnable alike) gets

    - class logits over the image's texts: ``q' @ t^T / sqrt(C) + bias`` with
      ``q' = cls_embed(q)`` and ``t`` the projected text embeddings (or their
      cosine times a learnable scale, see ``logit_scale``);
    - a box: the decoder's refined reference box (sigmoid cxcywh);
    - a mask: ``mask_embed(q) @ mask_features`` at 1/4 resolution.

    Predictions are made on the encoder's top-k proposals (class + box), on the
    queries before the first decoder layer and after every layer (deep
    supervision). Matching is mmdet's ``HungarianAssigner`` over all matching
    queries jointly; images without masks (detection-only) use the same costs
    minus the mask costs and skip the mask losses.

    Its parts, one file each: :class:`MQMatching` (ground truth, joint
    matching), :class:`MQDenoisingTargets` and :class:`MaskLosses`.

    Args:
        num_decoder_layers (int): decoder layers; ``reg_branches`` has one more
            (the last refines the encoder proposals) with ``proposal_branch``.
        proposal_branch (bool): build the encoder proposals' box branch.
            :class:`MQFormer` turns it off for ``query_mode='learnable'``,
            which makes no proposals (a parameter without gradients would
            stop DDP).
        embed_dims (int): query width C.
        num_points (int): points sampled per mask for matching and losses.
        oversample_ratio, importance_sample_ratio (float): Mask2Former's
            uncertainty point sampling for the mask losses.
        mask_loss_sampling (str): where the mask losses are read:
            ``'points'`` (default, Mask2Former's uncertainty points) or
            ``'dense'`` (every pixel of the (h, w) mask logits against the
            ground truth area-averaged to (h, w)). Dense is about 10x
            cheaper for small masks (the tiny model's 40x40) but, at about
            the same iterations on the crowded world, lost 0.6-6.2 stuff PQ
            per seed, 3.9 on average (docs/fair_comparison.md): the loss
            weights were set for points that sit mostly on boundaries.
            ``'pixels'``: Mask2Former's importance sampling on the pixel
            grid (:meth:`MaskLosses.pixel_points`), as cheap as dense;
            crowded world, 3 seeds: 2.3 stuff PQ under points on average.
        num_dn_mask_groups (int, optional): denoising groups whose masks are
            supervised (the first k; class and box losses use every group).
            With few objects per image DINO's dynamic groups make up to
            ``num_dn_queries / 2`` groups that all reconstruct the same
            masks. ``None`` (MaskDINO): every group.
        loss_cls, loss_bbox, loss_iou, loss_mask, loss_dice (dict): losses;
            defaults follow MaskDINO (class 4, box 5, giou 2, mask 5, dice 5).
        logit_scale (float, optional): ``None``: class logits are the scaled
            dot product ``q' . t / sqrt(C)``. A number: the cosine of ``q'`` and
            ``t`` times a learnable scale initialised to it (CLIP, X-Decoder:
            ``1 / 0.07``), so that close texts are told apart from the first
            iteration instead of after the projections have grown.
        decouple_stuff_boxes (bool): Mask DINO's decoupled box prediction:
            ground truth whose text is stuff (the sample's ``text_is_thing``)
            gets no box loss and no box matching cost (the assigner's box
            costs are wrapped in :class:`ThingBoxCost`); class and mask
            decide which query makes it. Defaults to False (every ground
            truth has a box).
        train_cfg (dict): ``assigner`` (a ``HungarianAssigner`` config; a
            :class:`QueryRoleCost` among its ``match_costs`` matches stuff
            to the learnable queries).
        test_cfg (dict): unused here (see :class:`MQFusionHead`).
    """

    def __init__(self,
                 num_decoder_layers: int = 9,
                 embed_dims: int = 256,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 mask_loss_sampling: str = 'points',
                 num_dn_mask_groups: Optional[int] = None,
                 logit_scale: Optional[float] = None,
                 proposal_branch: bool = True,
                 decouple_stuff_boxes: bool = False,
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
        if mask_loss_sampling not in ('points', 'dense', 'pixels'):
            raise ValueError(f'mask_loss_sampling={mask_loss_sampling!r}: '
                             "use 'points', 'dense' or 'pixels'")
        self.mask_loss_sampling = mask_loss_sampling
        self.num_dn_mask_groups = num_dn_mask_groups
        self.logit_scale_init = logit_scale
        self.proposal_branch = proposal_branch
        self.decouple_stuff_boxes = decouple_stuff_boxes
        self.train_cfg = train_cfg or {}
        # the matching reads gt is_thing for these two
        self.needs_is_thing = decouple_stuff_boxes or any(
            c['type'] == 'QueryRoleCost' for c in self.train_cfg.get(
                'assigner', {}).get('match_costs', []))
        self.test_cfg = test_cfg or {}
        if 'assigner' in self.train_cfg:
            cfg = copy.deepcopy(self.train_cfg['assigner'])
            if decouple_stuff_boxes:
                cfg['match_costs'] = thing_box_costs(cfg['match_costs'])
            self.assigner = TASK_UTILS.build(cfg)
            box_cfg = copy.deepcopy(cfg)
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
        if self.logit_scale_init is not None:
            self.log_logit_scale = nn.Parameter(
                torch.tensor(math.log(self.logit_scale_init)))
        self.reg_branches = ModuleList(
            [MLP(C, C, 4, 3) for _ in range(self.num_decoder_layers +
                                            int(self.proposal_branch))])
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
        if self.logit_scale_init is None:
            scale = 1 / math.sqrt(self.embed_dims)
        else:
            q, text_embeds = F.normalize(q, dim=-1), F.normalize(
                text_embeds, dim=-1)
            scale = self.log_logit_scale.exp().clamp(max=100)
        return torch.einsum('...bnc,btc->...bnt', q, text_embeds) * scale + \
            self.logit_bias

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

    # ------------------------------------------------------------- losses
    def loss(self, hidden_states: Tensor, references: Tensor,
             mask_features: Tensor, text_embeds: Tensor, text_mask: Tensor,
             batch_data_samples: SampleList,
             query_split: QuerySplit,
             enc_outputs_class: Optional[Tensor] = None,
             enc_outputs_coord: Optional[Tensor] = None,
             enc_outputs_mask_embed: Optional[Tensor] = None,
             dn_meta: Optional[dict] = None) -> Dict[str, Tensor]:
        """All MQ-Former losses.

        Args:
            hidden_states, references, mask_features, text_embeds: as in
                :meth:`forward`.
            text_mask (Tensor): (B, T) True for real texts.
            query_split (QuerySplit): the query layout the selection made
                (``[denoising | conditional | learnable]``).
            enc_outputs_class (Tensor, optional): top-k encoder proposal
                logits (B, K, T).
            enc_outputs_coord (Tensor, optional): their boxes (B, K, 4).
            enc_outputs_mask_embed (Tensor, optional): their mask embeddings
                (B, K, C) (MaskDINO's unified query selection).
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
        (dn_cls, dn_boxes, dn_embeds), (cls, boxes, embeds) = \
            self.split_outputs(self.text_logits(hidden_states, text_embeds),
                               references, self.mask_embed(hidden_states),
                               query_split)
        num_layers = len(cls)
        names = ['' if i == num_layers - 1 else f'd{i}.'
                 for i in range(num_layers)]
        is_learnable = torch.arange(
            query_split.num_matching,
            device=cls.device) >= query_split.num_conditional
        sets = [PredSet(cls[i], boxes[i], embeds[i], is_learnable)
                for i in range(num_layers)]
        if enc_outputs_class is not None:
            names.append('enc_')
            sets.append(PredSet(enc_outputs_class, enc_outputs_coord,
                                enc_outputs_mask_embed))
        assignments = self.get_targets(sets, gts, metas, mask_features)
        mask_assignments = list(assignments)
        if query_split.num_dn > 0:
            dn_assignment = self.get_dn_targets(gts, dn_meta)
            dn_mask_assignment = self.get_dn_targets(
                gts, dn_meta, self.num_dn_mask_groups)
            for i in range(num_layers):
                names.append(f'{names[i]}dn_')
                sets.append(PredSet(dn_cls[i], dn_boxes[i], dn_embeds[i]))
                assignments.append(dn_assignment)
                mask_assignments.append(dn_mask_assignment)
        return self.loss_by_assignments(sets, names, assignments, text_mask,
                                        gts, metas, mask_features,
                                        mask_assignments)

    def loss_by_assignments(self, pred_sets: List[PredSet], prefixes: List[str],
                            assignments: List[Tuple[List[Tensor],
                                                    List[Tensor]]],
                            text_mask: Tensor, gts: List[InstanceData],
                            metas: List[dict],
                            mask_features: Optional[Tensor] = None,
                            mask_assignments: Optional[List[tuple]] = None
                            ) -> Dict[str, Tensor]:
        """Focal, L1 and GIoU losses of all prediction sets at once
        (:meth:`loss_cls_boxes`), and the point-sampled BCE + dice mask
        losses of all sets at once (one mask build and one point-sampling
        call for every matched query of every set).

        Args:
            pred_sets (list[PredSet]): see :meth:`get_targets`.
            prefixes (list[str]): loss-name prefix per set.
            assignments (list[tuple]): per set, ``(pos_inds, pos_gt_inds)``.
            mask_features (Tensor | None): (B, C, h, w).
            mask_assignments (list[tuple], optional): per set, the
                assignment the mask losses use (a subset of the denoising
                groups); defaults to ``assignments``.
        """
        losses = {}
        per_set = self.loss_cls_boxes([p.cls for p in pred_sets],
                                      [p.boxes for p in pred_sets], text_mask,
                                      gts, metas, assignments)
        mask_sets = []
        for pred, prefix, set_losses, mask_assignment in zip(
                pred_sets, prefixes, per_set, mask_assignments
                or assignments):
            losses.update({prefix + k: v for k, v in set_losses.items()})
            if pred.mask_embeds is not None:
                mask_sets.append((prefix, pred.mask_embeds, *mask_assignment))
        if mask_sets:
            losses.update(self.loss_masks(mask_sets, mask_features, gts))
        return losses

    def loss_cls_box(self, cls_scores: Tensor, bbox_preds: Tensor,
                     text_mask: Tensor, gts: List[InstanceData],
                     metas: List[dict], pos_inds: List[Tensor],
                     pos_gt_inds: List[Tensor]) -> Dict[str, Tensor]:
        """:meth:`loss_cls_boxes` of one prediction set, ``cls_scores``
        (B, N, T) and ``bbox_preds`` (B, N, 4)."""
        return self.loss_cls_boxes([cls_scores], [bbox_preds], text_mask, gts,
                                   metas, [(pos_inds, pos_gt_inds)])[0]

    def loss_cls_boxes(self, cls_scores: List[Tensor],
                       bbox_preds: List[Tensor], text_mask: Tensor,
                       gts: List[InstanceData], metas: List[dict],
                       assignments: List[Tuple[List[Tensor], List[Tensor]]]
                       ) -> List[Dict[str, Tensor]]:
        """Focal loss over the image's texts, L1 (normalised cxcywh) and GIoU
        (pixels) on the matched boxes, for several prediction sets at once.

        One focal-loss call over every set's logits and one L1 and one GIoU
        call over every set's matched boxes (the same autograd nodes for any
        number of sets, instead of about 77 per set); each set's losses are its own share, averaged
        over its own number of matches, as if it were computed alone (the
        box losses keep the class loss's average factor, Mask DINO). Ground
        truth with ``is_thing == False`` (stuff, ``decouple_stuff_boxes``)
        has no box loss.

        Args:
            cls_scores (list[Tensor]): (B, N_s, T) logits per set.
            bbox_preds (list[Tensor]): (B, N_s, 4) normalised cxcywh per set.
            text_mask (Tensor): (B, T) True for real texts.
            assignments (list[tuple]): per set, ``(pos_inds, pos_gt_inds)``
                (lists of B tensors).

        Returns:
            list[dict]: per set ``loss_cls``, ``loss_bbox`` and ``loss_iou``.
        """
        S = len(cls_scores)
        sizes = [c.shape[1] for c in cls_scores]
        cls = torch.cat(cls_scores, 1)  # (B, sum N_s, T)
        boxes = torch.cat(bbox_preds, 1)  # (B, sum N_s, 4)
        B, N, T = cls.shape
        offsets = [0, *itertools.accumulate(sizes)]
        cls_targets = cls.new_zeros(B, N, T)
        rows, tgt_boxes, factors, box_set = [], [], [], []
        for s, (pos_inds, pos_gt_inds) in enumerate(assignments):
            for b in range(B):
                pos = pos_inds[b] + offsets[s]
                pos_gt = pos_gt_inds[b]
                cls_targets[b, pos, gts[b].labels[pos_gt]] = 1
                if 'is_thing' in gts[b]:
                    with_box = gts[b].is_thing[pos_gt]
                    pos, pos_gt = pos[with_box], pos_gt[with_box]
                img_h, img_w = metas[b]['img_shape'][:2]
                f = boxes.new_tensor([img_w, img_h, img_w, img_h])
                rows.append(pos + b * N)
                tgt_boxes.append(gts[b].bboxes[pos_gt] / f)
                factors.append(f.expand(len(pos), 4))
                box_set.append(torch.full_like(pos, s))
        num_pos = torch.tensor([sum(len(p) for p in pos_inds)
                                for pos_inds, _ in assignments],
                               dtype=torch.float32, device=cls.device)
        # mmdet's mean over an average factor: sum / (avg + eps)
        avgs = reduce_mean(num_pos).clamp(min=1) + torch.finfo(
            torch.float32).eps  # (S, )
        query_set = torch.repeat_interleave(
            torch.arange(S, device=cls.device),
            torch.tensor(sizes, device=cls.device))  # (sum N_s, )
        cls_weights = text_mask[:, None, :].expand(B, N, T).float()
        loss_cls = self.loss_cls(
            cls.reshape(-1, T), cls_targets.reshape(-1, T),
            cls_weights.reshape(-1, T),
            reduction_override='none').float().view(B, N, T).sum(
                (0, 2))  # (N, ), summed in float32 under AMP
        loss_cls = loss_cls.new_zeros(S).index_add(0, query_set, loss_cls)
        rows = torch.cat(rows)
        if len(rows) == 0:
            loss_bbox = loss_iou = (boxes.sum() * 0).expand(S)
        else:
            pos_boxes = boxes.flatten(0, 1)[rows]  # (P, 4)
            tgt_boxes, factors = torch.cat(tgt_boxes), torch.cat(factors)
            box_set = torch.cat(box_set)
            loss_bbox = self.loss_bbox(
                pos_boxes, bbox_xyxy_to_cxcywh(tgt_boxes),
                reduction_override='none').float().sum(1)  # (P, )
            loss_iou = self.loss_iou(
                bbox_cxcywh_to_xyxy(pos_boxes) * factors,
                tgt_boxes * factors,
                reduction_override='none').float()  # (P, )
            loss_bbox = loss_bbox.new_zeros(S).index_add(0, box_set,
                                                         loss_bbox)
            loss_iou = loss_iou.new_zeros(S).index_add(0, box_set, loss_iou)
        return [
            dict(loss_cls=c, loss_bbox=l1, loss_iou=iou)
            for c, l1, iou in zip((loss_cls / avgs).unbind(),
                                  (loss_bbox / avgs).unbind(),
                                  (loss_iou / avgs).unbind())
        ]

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

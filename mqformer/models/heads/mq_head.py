"""MQHead: text-logit, box and mask predictions for every decoder layer, joint
Hungarian matching over all queries, and the MaskDINO-style losses."""
import copy
import math
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.model import BaseModule, ModuleList, bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdet.models.layers.transformer.utils import MLP
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mmdet.structures.mask import BitmapMasks, mask2bbox
from mmdet.utils import ConfigType, OptConfigType, reduce_mean
from ..layers import QuerySplit
from ..task_modules import thing_box_costs
from .mq_fusion_head import text_is_thing

MASK_COSTS = ('DiceCost', 'CrossEntropyLossCost',
              'BinaryCrossEntropyLossCost')


class PredSet(NamedTuple):
    """One set of query predictions of a batch (a decoder layer's, the
    encoder proposals'): ``cls`` (B, N, T) logits, ``boxes`` (B, N, 4)
    normalised cxcywh, ``mask_embeds`` (B, N, C) or ``None`` (no masks)."""
    cls: Tensor
    boxes: Tensor
    mask_embeds: Optional[Tensor]


@MODELS.register_module()
class MQHead(BaseModule):
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
            ``'points'`` (Mask2Former's uncertainty points), ``'dense'``
            (every pixel of the (h, w) mask logits against the ground truth
            area-averaged to (h, w)) or ``'auto'`` (default): dense where
            the mask has no more pixels than the point sampling draws
            (``h * w <= num_points * oversample_ratio``, e.g. a CPU model's
            40x40 masks), points otherwise (COCO-sized masks).
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
        train_cfg (dict): ``assigner`` (a ``HungarianAssigner`` config).
        test_cfg (dict): unused here (see :class:`MQFusionHead`).
    """

    def __init__(self,
                 num_decoder_layers: int = 9,
                 embed_dims: int = 256,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 mask_loss_sampling: str = 'auto',
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
        if mask_loss_sampling not in ('auto', 'points', 'dense'):
            raise ValueError(f'mask_loss_sampling={mask_loss_sampling!r}: '
                             "use 'auto', 'points' or 'dense'")
        self.mask_loss_sampling = mask_loss_sampling
        self.num_dn_mask_groups = num_dn_mask_groups
        self.logit_scale_init = logit_scale
        self.proposal_branch = proposal_branch
        self.decouple_stuff_boxes = decouple_stuff_boxes
        self.train_cfg = train_cfg or {}
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

    # ------------------------------------------------------------- targets
    def preprocess_gt(self, batch_data_samples: SampleList
                      ) -> Tuple[List[InstanceData], List[dict]]:
        """Ground truth per image: ``labels`` (indices into the image's texts),
        ``bboxes`` (xyxy pixels, derived from masks where missing),
        ``masks`` (bool tensor at the padded input size; absent for
        detection-only images) and, with ``decouple_stuff_boxes``,
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
            if self.decouple_stuff_boxes:
                gt_inst.is_thing = self.gt_is_thing(labels, meta)
            gts.append(gt_inst)
            metas.append(meta)
        return gts, metas

    @staticmethod
    def gt_is_thing(labels: Tensor, meta: dict) -> Tensor:
        """(M, ) bool: the thing/stuff flag of each ground truth's text."""
        if meta.get('text_is_thing') is None:  # all things, said once
            text_is_thing(meta, 0, 'decouple_stuff_boxes')
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
                    None if mask_features is None else mask_features[b])
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
                               mask_feature: Optional[Tensor] = None
                               ) -> List[Tuple[Tensor, Tensor]]:
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
            gt_masked.masks = point_sample(
                gt_masks.unsqueeze(1).float(),
                points.repeat(len(gt_masks), 1, 1)).squeeze(1)
        results = []
        for cls_score, bbox_pred, mask_embed in zip(cls_scores, bbox_preds,
                                                    mask_embeds):
            pred = InstanceData(
                scores=cls_score[:, :num_texts],
                bboxes=bbox_cxcywh_to_xyxy(bbox_pred) * factor)
            if feat is not None and mask_embed is not None:
                pred.masks = mask_embed @ feat
                result = self.assigner.assign(pred, gt_masked,
                                              img_meta=img_meta)
            else:
                result = self.box_assigner.assign(pred, gt, img_meta=img_meta)
            pos_inds = torch.nonzero(result.gt_inds > 0).squeeze(-1)
            results.append((pos_inds, result.gt_inds[pos_inds] - 1))
        return results

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
        sets = [PredSet(cls[i], boxes[i], embeds[i]) for i in range(num_layers)]
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
        """Focal, L1 and GIoU losses per prediction set, and the point-sampled
        BCE + dice mask losses of all sets at once (one mask build and one
        point-sampling call for every matched query of every set).

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
        mask_sets = []
        for pred, prefix, (pos_inds, pos_gt_inds), mask_assignment in zip(
                pred_sets, prefixes, assignments, mask_assignments
                or assignments):
            set_losses = self.loss_cls_box(pred.cls, pred.boxes, text_mask,
                                           gts, metas, pos_inds, pos_gt_inds)
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
        """Focal loss over the image's texts, L1 (normalised cxcywh) and GIoU
        (pixels) on the matched boxes of one prediction set, ``cls_scores``
        (B, N, T) and ``bbox_preds`` (B, N, 4). Ground truth with
        ``is_thing == False`` (stuff, ``decouple_stuff_boxes``) has no box
        loss; the box losses keep the class loss's average factor (Mask
        DINO)."""
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
        pos_boxes, tgt_boxes, factors = [], [], []
        for b in range(B):
            img_h, img_w = metas[b]['img_shape'][:2]
            f = bbox_preds.new_tensor([img_w, img_h, img_w, img_h])
            pos, pos_gt = pos_inds[b], pos_gt_inds[b]
            if 'is_thing' in gts[b]:
                with_box = gts[b].is_thing[pos_gt]
                pos, pos_gt = pos[with_box], pos_gt[with_box]
            pos_boxes.append(bbox_preds[b, pos])
            tgt_boxes.append(gts[b].bboxes[pos_gt] / f)
            factors.append(f.expand(len(pos), 4))
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
        return losses

    def dense_mask_loss(self, mask_size: Tuple[int, int]) -> bool:
        """Whether the mask losses read every pixel of (h, w) masks
        (``mask_loss_sampling``)."""
        if self.mask_loss_sampling == 'auto':
            h, w = mask_size
            return h * w <= self.num_points * self.oversample_ratio
        return self.mask_loss_sampling == 'dense'

    def loss_masks(self, mask_sets: List[tuple], mask_features: Tensor,
                   gts: List[InstanceData]) -> Dict[str, Tensor]:
        """BCE + dice on the matched queries of images with masks, for
        several prediction sets at once.

        Only the matched queries' masks (M, h, w) are built, image by image
        from ``mask_embeds`` (B, N_s, C) and ``mask_features`` (B, C, h, w);
        Mask2Former's uncertainty point sampling runs once over all of them
        (or, :meth:`dense_mask_loss`, every pixel is read against the GT
        masks area-averaged to (h, w)) and each set's losses are its masks' share, averaged over its own
        number of masks (as if every set were computed alone).

        Args:
            mask_sets (list[tuple]): ``(prefix, mask_embeds, pos_inds,
                pos_gt_inds)`` per set.
        """
        dense = self.dense_mask_loss(mask_features.shape[-2:])
        preds, targets, set_ids = [], [], []
        for b, (gt, feat) in enumerate(zip(gts, mask_features)):
            if 'masks' not in gt:
                continue
            embeds, tgt = [], []
            for s, (_, mask_embeds, pos_inds, pos_gt_inds) in enumerate(
                    mask_sets):
                embeds.append(mask_embeds[b, pos_inds[b]])
                tgt.append(pos_gt_inds[b])
                set_ids.append(torch.full_like(pos_inds[b], s))
            preds.append(torch.einsum('nc,chw->nhw', torch.cat(embeds), feat))
            gt_masks = gt.masks
            if dense:  # each GT once, then indexed per matched query
                gt_masks = F.adaptive_avg_pool2d(
                    gt_masks[None].float(), feat.shape[-2:])[0]
            targets.append(gt_masks[torch.cat(tgt)])
        S = len(mask_sets)
        # zero-weighted, so the mask branches take part in every backward
        # (DDP needs it when a rank's batch has no masks: VG, Objects365)
        anchor = (sum(e.sum() for _, e, _, _ in mask_sets) +
                  mask_features.sum()) * 0
        num = sum(len(p) for p in preds)
        set_ids = torch.cat(set_ids) if set_ids else anchor.new_zeros(
            0, dtype=torch.long)
        # every rank joins this collective, with or without masks in its batch
        counts = torch.bincount(set_ids, minlength=S).float()
        avgs = reduce_mean(counts).clamp(min=1)
        if num == 0:
            return {f'{prefix}{k}': anchor for prefix, *_ in mask_sets
                    for k in ('loss_mask', 'loss_dice')}
        preds, targets = torch.cat(preds), torch.cat(targets)
        if dense:
            point_preds, point_targets = preds.flatten(1), targets.flatten(1)
        else:
            with torch.no_grad():
                points = get_uncertain_point_coords_with_randomness(
                    preds.unsqueeze(1), None, self.num_points,
                    self.oversample_ratio, self.importance_sample_ratio)
                point_targets = point_sample(targets.unsqueeze(1).float(),
                                             points).squeeze(1)
            point_preds = point_sample(preds.unsqueeze(1), points).squeeze(1)
        dice = self.loss_dice(point_preds, point_targets,
                              reduction_override='none')  # (M, )
        bce = self.loss_mask(point_preds, point_targets,
                             reduction_override='none').mean(1)  # (M, )
        per_set_dice = dice.new_zeros(S).index_add(0, set_ids, dice) / avgs
        per_set_bce = bce.new_zeros(S).index_add(0, set_ids, bce) / avgs
        losses = {}
        for s, (prefix, *_) in enumerate(mask_sets):
            losses[f'{prefix}loss_mask'] = per_set_bce[s] + anchor
            losses[f'{prefix}loss_dice'] = per_set_dice[s] + anchor
        return losses

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

"""MQ-Former's conditional query selection: the top-k encoder proposals
(MaskDINO's unified query selection), mask-enhanced anchors, distinct
selection (DDQ) by box NMS or Fast NMS over the proposals' masks."""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import batched_nms
from torch import Tensor

from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from ..heads.mq_fusion_head import text_is_thing


def shape_tensor(shape: Tuple, like: Tensor) -> Tensor:
    """(H, W) -> (2, ) tensor like ``like``; symbolic while tracing."""
    if torch.jit.is_tracing():
        return torch.stack([torch.as_tensor(x) for x in shape]).to(like)
    return like.new_tensor(shape)


class ConditionalQuerySelection:
    """The conditional-query steps of :class:`MQFormer` (a mixin of the
    detector, so that the selection reads the detector's encoder proposal
    layers, ``bbox_head`` branches and ``decoder.norm`` and checkpoints keep
    their keys).

    Reads ``num_conditional``, ``dqs_cfg``, ``proposal_texts``,
    ``enc_mask_loss``, ``mask_box_init``, ``gen_encoder_output_proposals``
    (DeformableDETR's), ``image_shapes``, ``bbox_head``, ``decoder``.
    """

    def select_queries(self, memory: Tensor, memory_mask: Optional[Tensor],
                       spatial_shapes: Tensor, text_embeds: Tensor,
                       text_mask: Tensor, mask_features: Tensor,
                       batch_data_samples: SampleList,
                       img_shapes: Optional[Tensor] = None,
                       batch_input_shape: Optional[Tuple] = None
                       ) -> Tuple[Tensor, Tensor, Dict]:
        """MaskDINO's unified query selection: the top-k encoder proposals
        (scored by their best real text; padding and border proposals never
        qualify) become the N_c conditional queries.

        With ``mask_box_init`` their anchor boxes are the boxes of their
        predicted masks (mask-enhanced anchors, falling back to the regressed
        proposal where a mask is empty); with ``enc_mask_loss`` their masks
        are supervised with the encoder's class and box outputs.

        Returns:
            tuple: content (B, K, C) and inverse-sigmoid anchors (B, K, 4),
            both detached, and the encoder outputs for the losses.
        """
        output_memory, output_proposals = self.gen_encoder_output_proposals(
            memory, memory_mask, spatial_shapes)
        enc_class = self.bbox_head.text_logits(output_memory, text_embeds)
        enc_coord_unact = self.bbox_head.reg_branches[
            self.decoder.num_layers](output_memory) + output_proposals
        if img_shapes is None:
            img_shapes = self.image_shapes(batch_data_samples, memory.device)
        if batch_input_shape is None:
            batch_input_shape = batch_data_samples[0].batch_input_shape

        candidate_masks = None
        if self.dqs_cfg and self.dqs_cfg.get('type') == 'mask_nms':
            # each image's share of the padded input; features resized once
            share = img_shapes / shape_tensor(batch_input_shape, img_shapes)
            feats = self.proposal_mask_features(mask_features)

            def candidate_masks(idx: Tensor,
                                rows: Optional[Tensor] = None) -> Tensor:
                memory, f, sh = output_memory, feats, share
                if rows is not None:  # a subset of the images
                    memory, f, sh = memory[rows], f[rows], sh[rows]
                content = torch.gather(
                    memory, 1, idx[..., None].expand(-1, -1, memory.size(-1)))
                return self.proposal_masks(content, f, sh)

        topk = self.topk_proposals(
            enc_class, self.selection_texts(text_mask, batch_data_samples),
            output_proposals, enc_coord_unact, candidate_masks)

        def gather(x: Tensor) -> Tensor:
            return torch.gather(x, 1, topk[..., None].expand(-1, -1,
                                                             x.size(-1)))

        topk_class, topk_coord_unact = gather(enc_class), gather(
            enc_coord_unact)
        topk_content = gather(output_memory)
        outputs = dict(enc_outputs_class=topk_class,
                       enc_outputs_coord=topk_coord_unact.sigmoid())
        refs = topk_coord_unact.detach()
        mask_embed = None
        if self.enc_mask_loss and self.training:
            mask_embed = self.bbox_head.mask_embed(
                self.decoder.norm(topk_content))
            outputs['enc_outputs_mask_embed'] = mask_embed
        if self.mask_box_init:
            with torch.no_grad():
                if mask_embed is None:
                    mask_embed = self.bbox_head.mask_embed(
                        self.decoder.norm(topk_content))
                masks = torch.einsum('bkc,bchw->bkhw', mask_embed,
                                     mask_features)
                boxes, found = self.mask_boxes(
                    masks, img_shapes, batch_input_shape)
                refs = torch.where(found[..., None],
                                   inverse_sigmoid(boxes, eps=1e-3), refs)
        return topk_content.detach(), refs, outputs

    def selection_texts(self, text_mask: Tensor,
                        batch_data_samples: SampleList) -> Tensor:
        """(B, T) bool: the texts a proposal's selection score is taken
        over. ``proposal_texts='all'``: ``text_mask``; ``'things'``: each
        image's thing texts (the fusion head's :func:`text_is_thing`; all of
        its texts where it has no thing text)."""
        if self.proposal_texts == 'all':
            return text_mask
        things = text_mask.clone()
        for i, sample in enumerate(batch_data_samples):
            n = int(text_mask[i].sum())
            flags = text_is_thing(sample.metainfo, n, 'proposal_texts')
            if len(flags) != n:
                raise ValueError(
                    f'{sample.metainfo.get("img_path", "sample")}: '
                    f'text_is_thing has {len(flags)} flags for {n} texts')
            if any(flags):
                things[i, :n] = torch.as_tensor(flags, dtype=torch.bool)
        return things

    def topk_proposals(self, enc_class: Tensor, text_mask: Tensor,
                       output_proposals: Tensor,
                       enc_coord_unact: Optional[Tensor] = None,
                       candidate_masks: Optional[Callable] = None) -> Tensor:
        """Indices (B, K) of the K = N_c best proposals. A proposal's score is
        its best real text; proposals on padding or at the border (inf in
        ``output_proposals`` (B, S, 4)) are never chosen. With ``dqs_cfg``
        the K are distinct (:meth:`distinct_topk`).

        Args:
            enc_class (Tensor): (B, S, T) logits. text_mask (Tensor): (B, T).
            enc_coord_unact (Tensor, optional): (B, S, 4) regressed proposal
                boxes, inverse-sigmoid cxcywh; needed with ``dqs_cfg``
                ``type='nms'``.
            candidate_masks (callable, optional): ``(idx (B', P), rows (B', )
                or None) -> (B', P, h, w)`` mask logits of the proposals
                ``idx`` of images ``rows`` (None: all); needed with
                ``type='mask_nms'``.
        """
        scores = enc_class.masked_fill(~text_mask[:, None], -1e4).max(-1)[0]
        scores = scores.masked_fill(
            torch.isinf(output_proposals).any(-1), float('-inf'))
        # never a padding or border proposal: an image with fewer valid
        # proposals than N_c gets fewer conditional queries (the batch's
        # smallest count; QuerySplit carries it)
        num_valid = torch.isfinite(scores).sum(1).min()
        k = num_valid.clamp(max=self.num_conditional) if \
            torch.jit.is_tracing() else min(self.num_conditional,
                                            int(num_valid))
        if self.dqs_cfg is None:
            return scores.topk(k, dim=1)[1]
        with torch.no_grad():
            if self.dqs_cfg.get('type') == 'mask_nms':
                if candidate_masks is None:
                    raise ValueError("dqs_cfg type='mask_nms' needs the "
                                     'candidate_masks of the proposals')
                thr = self.dqs_cfg.get('iou_threshold', 0.8)
                return self.distinct_topk(
                    scores, k, lambda idx, probs, valid: self.mask_nms_prefix(
                        candidate_masks, idx, valid, thr, k))
            if enc_coord_unact is None:
                raise ValueError("dqs_cfg type='nms' needs the regressed "
                                 'proposal boxes (enc_coord_unact)')
            boxes = bbox_cxcywh_to_xyxy(enc_coord_unact.sigmoid())
            nms_cfg = {
                key: v
                for key, v in self.dqs_cfg.items()
                if key not in ('nms_pre_ratio', 'mask_size')
            }

            def box_nms(idx: Tensor, probs: Tensor, valid: Tensor) -> Tensor:
                # every image's valid candidates in one call, the image as
                # batched_nms' group (no box suppresses another image's)
                b, j = torch.nonzero(valid, as_tuple=True)
                kept = batched_nms(boxes[b, idx[b, j]], probs[b, j], b,
                                   nms_cfg)[1]
                keep = torch.zeros_like(valid)
                keep[b[kept], j[kept]] = True
                return keep

            return self.distinct_topk(scores, k, box_nms)

    def distinct_topk(self, scores: Tensor, k: int,
                      suppress: Callable) -> Tensor:
        """DDQ's distinct queries: each image's K best proposals that survive
        the suppression, then, if fewer than K survive, its best suppressed
        ones (the query count stays fixed).

        Args:
            scores (Tensor): (B, S) proposal scores, -inf where never chosen.
            k (int): K.
            suppress (callable): ``(idx (B, P), probs (B, P), valid (B, P))
                -> keep`` (B, P) bool, True for the proposals to keep;
                ``idx`` comes sorted by score, best first, and ``valid``
                (False for -inf scores, always the last ones) is never kept.

        Returns:
            Tensor: (B, K) proposal indices, survivors first, by score.
        """
        ratio = self.dqs_cfg.get('nms_pre_ratio', 4)
        pre = torch.clamp(ratio * k, max=scores.shape[1]) if \
            torch.jit.is_tracing() else min(scores.shape[1], ratio * k)
        cand_scores, cand = scores.topk(pre, dim=1)
        valid = torch.isfinite(cand_scores)
        probs = cand_scores.sigmoid()
        keep = suppress(cand, probs, valid) & valid
        # rank: survivors (2..3), suppressed candidates (0..1), the rest
        # (-2..-1; padding and border -2); no data-dependent branch, so it
        # also exports to ONNX
        rank = scores.sigmoid() - 2
        rank = rank.scatter(
            1, cand,
            torch.where(valid, torch.where(keep, probs + 2, probs),
                        rank.gather(1, cand)))
        return rank.topk(k, dim=1)[1]

    def proposal_mask_features(self, mask_features: Tensor) -> Tensor:
        """Mask features (B, C, h, w) resized to at most
        ``dqs_cfg['mask_size']`` (default 32) a side, for
        :meth:`proposal_masks`."""
        h, w = mask_features.shape[-2:]
        size = self.dqs_cfg.get('mask_size', 32)
        if torch.jit.is_tracing():  # any size: resizing to the same size
            # is the identity
            return F.interpolate(
                mask_features, size=(torch.clamp(h, max=size),
                                     torch.clamp(w, max=size)),
                mode='bilinear', align_corners=False)
        if max(h, w) > size:  # (bilinear: adaptive pooling to a size
            # that does not divide the input does not export to ONNX)
            return F.interpolate(
                mask_features, size=(min(h, size), min(w, size)),
                mode='bilinear', align_corners=False)
        return mask_features

    def proposal_masks(self, content: Tensor, mask_features: Tensor,
                       valid_share: Tensor) -> Tensor:
        """Mask logits of encoder proposals for distinct selection, -inf
        outside each image's valid area.

        Args:
            content (Tensor): (B, P, C) proposal features (``output_memory``).
            mask_features (Tensor): (B, C, h, w) of the padded input, from
                :meth:`proposal_mask_features`.
            valid_share (Tensor): (B, 2) each image's (h, w) over the padded
                input's.

        Returns:
            Tensor: (B, P, h, w) mask logits.
        """
        embed = self.bbox_head.mask_embed(self.decoder.norm(content))
        masks = torch.einsum('bpc,bchw->bphw', embed, mask_features)
        ph, pw = masks.shape[-2:]
        ys = torch.arange(ph, device=masks.device)
        xs = torch.arange(pw, device=masks.device)
        valid = (ys[None, :, None] <
                 torch.ceil(valid_share[:, 0] * ph)[:, None, None]) & \
            (xs[None, None] < torch.ceil(valid_share[:, 1] * pw)[:, None,
                                                                  None])
        return masks.masked_fill(~valid[:, None], float('-inf'))

    @staticmethod
    def mask_nms(mask_logits: Tensor, iou_threshold: float) -> Tensor:
        """YOLACT's Fast NMS on masks: keeps each mask that overlaps no
        better-ranked mask by more than ``iou_threshold`` (mask IoU).

        Args:
            mask_logits (Tensor): (..., P, h, w), sorted by score, best first
                (leading dims: a batch of independent sets).

        Returns:
            Tensor: (..., P) bool, True for the kept masks (no
            data-dependent shape, so it exports).
        """
        fg = (mask_logits > 0).flatten(-2).float()
        inter = fg @ fg.transpose(-1, -2)
        area = fg.sum(-1)
        iou = inter / (area[..., :, None] + area[..., None, :] -
                       inter).clamp(min=1)
        # vs every better-ranked mask (any() also takes P = 0)
        return ~(iou.triu(1) > iou_threshold).any(-2)

    @classmethod
    def mask_nms_prefix(cls, masks_of: Callable, idx: Tensor, valid: Tensor,
                        iou_threshold: float, k: int) -> Tensor:
        """:meth:`mask_nms` of each image's candidates ``idx`` (B, P), best
        first, in blocks of ``k, k, 2k, 4k, ...`` (few Python steps where
        most candidates repeat) over the images that are not done: an image
        is done once it has ``k`` survivors or no valid candidate left. A
        candidate's fate depends only on the better-ranked ones, so the
        first ``k`` survivors are those of the full Fast NMS; the unread
        candidates come back as suppressed (:meth:`distinct_topk` needs only
        the first ``k``). Exported graphs read all of them (no
        data-dependent loop).

        Args:
            masks_of (callable): ``(idx (B', P'), rows (B', ) or None) ->
                (B', P', h, w)`` mask logits of the candidates ``idx`` of
                images ``rows`` (None: all B).
            valid (Tensor): (B, P) bool, False for candidates never kept
                (-inf scores, after every valid one).

        Returns:
            Tensor: (B, P) bool, True for the kept candidates.
        """
        if torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or \
                k <= 0:
            return cls.mask_nms(masks_of(idx, None), iou_threshold) & valid
        B, P = idx.shape
        rows = torch.arange(B, device=idx.device)  # images not yet done
        keep = torch.zeros_like(valid)
        fgs, areas = [], []
        start, step = 0, k
        while start < P:
            end = min(start + step, P)
            fg = (masks_of(idx[rows, start:end], rows) > 0).flatten(2).float()
            area = fg.sum(2)
            fgs.append(fg)
            areas.append(area)
            prev, prev_area = torch.cat(fgs, 1), torch.cat(areas, 1)
            inter = fg @ prev.transpose(1, 2)  # (B', k', end): the earlier
            # blocks and its own
            iou = inter / (area[..., None] + prev_area[:, None] -
                           inter).clamp(min=1)
            # candidate j of the block vs every better-ranked candidate
            better = torch.arange(end, device=fg.device)[None] < \
                torch.arange(start, end, device=fg.device)[:, None]
            keep[rows, start:end] = ~((iou > iou_threshold) & better).any(
                2) & valid[rows, start:end]
            done = (keep[rows].sum(1) >= k) | ~valid[rows, end:].any(1)
            if bool(done.all()):
                break
            if bool(done.any()):  # the others read on alone
                rows = rows[~done]
                fgs, areas = [f[~done] for f in fgs], [a[~done] for a in areas]
            start, step = end, end  # blocks of k, k, 2k, 4k, ...
        return keep

    @staticmethod
    def mask_boxes(mask_logits: Tensor, img_shapes: Tensor,
                   batch_input_shape: Tuple[int, int]
                   ) -> Tuple[Tensor, Tensor]:
        """Boxes of predicted masks, MaskDINO's mask-enhanced anchors.

        mmdet's ``mask2bbox`` (same pixel convention: ``max + 1``) restricted
        to each image's valid area and vectorised over the batch and the K
        masks (it loops over masks in Python, and this runs on B x N_c masks
        every step); tensor ops only, so it exports.

        Args:
            mask_logits (Tensor): (B, K, h, w) at 1/4 of the padded input.
            img_shapes (Tensor): (B, 2) valid (h, w) of each image.
            batch_input_shape (tuple): (H, W) of the padded input.

        Returns:
            tuple: (B, K, 4) cxcywh boxes of ``logit > 0`` inside each image's
            valid area, normalised to it, and (B, K) bool, False for masks
            that are empty there.
        """
        B, K, h, w = mask_logits.shape
        H, W = batch_input_shape
        # the images' valid areas at mask resolution, in mask pixels (B, )
        vh = img_shapes[:, 0].float() * (h / H)
        vw = img_shapes[:, 1].float() * (w / W)
        ys = torch.arange(h, device=mask_logits.device)
        xs = torch.arange(w, device=mask_logits.device)
        in_h = ys[None] < torch.ceil(vh)[:, None]  # (B, h)
        in_w = xs[None] < torch.ceil(vw)[:, None]  # (B, w)
        fg = (mask_logits > 0) & in_h[:, None, :, None] & \
            in_w[:, None, None, :]
        rows, cols = fg.any(3), fg.any(2)  # (B, K, h), (B, K, w)
        big = h + w + 1  # beyond any row or column
        y0 = torch.where(rows, ys, big).amin(-1).float()
        y1 = torch.where(rows, ys, -1).amax(-1).float() + 1
        x0 = torch.where(cols, xs, big).amin(-1).float()
        x1 = torch.where(cols, xs, -1).amax(-1).float() + 1
        vh, vw = vh[:, None], vw[:, None]
        xyxy = torch.stack([x0 / vw, y0 / vh, x1 / vw, y1 / vh],
                           -1).clamp(0, 1)
        return bbox_xyxy_to_cxcywh(xyxy), rows.any(-1)

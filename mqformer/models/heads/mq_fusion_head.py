"""MQFusionHead: one set of query predictions -> the outputs of every task."""
import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, scale_boxes
from mmdet.structures.mask import mask2bbox
from mmdet.utils import OptConfigType

TASKS = ('instance', 'semantic', 'panoptic', 'referring', 'foreground',
         'detection')
_WARNED = set()


def text_is_thing(meta: dict, num_texts: int, where: str) -> List[bool]:
    """The sample's thing/stuff flag per text. Without ``text_is_thing``
    every text is a thing, said once per ``where`` with the sample named."""
    flags = meta.get('text_is_thing')
    if flags is not None:
        return list(flags)
    if where not in _WARNED:
        _WARNED.add(where)
        print_log(
            f'{where}: {meta.get("img_path", "a sample")} has no '
            '"text_is_thing" in its metainfo: every text is taken for a '
            'thing (stuff is split into instances). The unified text-label '
            'transform sets it from the dataset\'s stuff classes. Said once.',
            logger='current', level=logging.WARNING)
    return [True] * num_texts


@MODELS.register_module()
class MQFusionHead(BaseModule):
    """Turns per-query text logits, boxes and masks into task outputs.

    ``test_cfg`` switches (all default off except ``instance_on``):
    ``instance_on`` (``pred_instances``: top-k over queries x texts, score x
    mask quality, boxes from the box head (``box_source='mask'``: the boxes
    of the binary masks, the head's where a mask is empty), masks, and
    ``query_index``, the
    matching query each came from), ``detection_on`` (the same
    without masks), ``semantic_on`` (``pred_sem_seg``: per-pixel text index),
    ``panoptic_on`` (``pred_panoptic_seg``, mmdet's encoding
    ``text + instance_id * INSTANCE_OFFSET``), ``referring_on`` (one mask per
    text: ``pred_instances`` with one entry per expression) and
    ``foreground_on`` (``pred_fg``: a soft map in [0, 1] for the first text).
    A sample's ``task`` tag (``'referring'``, ``'foreground'``) turns its
    output on as well.

    Panoptic thing/stuff comes from the sample's ``text_is_thing`` (dataset
    metadata); texts without it are things. Other keys: ``max_per_img``
    (100), ``object_mask_thr`` (0.25), ``iou_thr`` (0.8), ``pano_temp``
    (0.06: softmax temperature over the sigmoid class scores, MaskDINO),
    ``mask_thr`` (0.5), ``filter_low_score`` (True: a panoptic segment is
    the pixels its query owns inside its binary mask, MaskDINO's rule;
    False: every pixel it owns, mmdet's Mask2Former default), ``text_chunk``
    (128 texts per semantic scoring step).
    """

    SETTINGS = ('max_per_img', 'object_mask_thr', 'iou_thr', 'pano_temp',
                'mask_thr', 'filter_low_score', 'text_chunk', 'box_source')

    def __init__(self, test_cfg: OptConfigType = None, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.test_cfg = dict(test_cfg or {})
        known = {f'{t}_on' for t in TASKS} | set(self.SETTINGS)
        unknown = sorted(set(self.test_cfg) - known)
        if unknown:
            # a misspelt key would silently keep its default (mmdet's
            # Mask2Former spells it max_per_image)
            hint = (" (MQ-Former's key is 'max_per_img')"
                    if 'max_per_image' in unknown else '')
            raise ValueError(f'model.test_cfg: unknown key(s) {unknown}'
                             f'{hint}; known: {sorted(known)}')

    def switches(self, task: Optional[str]) -> dict:
        on = {t: bool(self.test_cfg.get(f'{t}_on', t == 'instance'))
              for t in TASKS}
        if task in ('referring', 'foreground'):
            on[task] = True
        return on

    # ----------------------------------------------------------- per image
    def predict(self, cls_score: Tensor, bbox_pred: Tensor, mask_pred: Tensor,
                img_meta: dict, rescale: bool = True) -> dict:
        """
        Args:
            cls_score (Tensor): (N, T) logits over the image's texts.
            bbox_pred (Tensor): (N, 4) normalised cxcywh.
            mask_pred (Tensor): (N, h, w) logits at 1/4 of the padded input.
            img_meta (dict): ``img_shape``, ``batch_input_shape``,
                ``ori_shape``, ``scale_factor``; optional ``task`` and
                ``text_is_thing``.

        Returns:
            dict: data-sample fields (``pred_instances``, ``pred_sem_seg``,
            ``pred_panoptic_seg``, ``pred_fg``) for the switched-on tasks.
        """
        on = self.switches(img_meta.get('task'))
        boxes = self.boxes_to_image(bbox_pred, img_meta, rescale)
        probs = cls_score.sigmoid()

        def masks_of(idx: Tensor) -> Tensor:
            """Mask probabilities (K, H, W) at image size for the queries
            ``idx`` only (distinct indices): upsampling all N masks dominates
            post-processing time."""
            if len(idx) == 0:
                size = img_meta['ori_shape'][:2] if rescale else \
                    img_meta['img_shape']
                return mask_pred.new_zeros((0, *size))
            return self.masks_to_image(mask_pred[idx], img_meta,
                                       rescale).sigmoid_()

        out = {}
        if on['referring']:
            out['pred_instances'] = self.referring(probs, boxes, masks_of)
        elif on['instance'] or on['detection']:
            out['pred_instances'] = self.instances(probs, boxes, masks_of,
                                                   with_masks=on['instance'])
        if on['semantic'] or on['foreground']:  # every query's mask, once
            all_masks = masks_of(torch.arange(len(probs), device=probs.device))
        if on['semantic']:
            out['pred_sem_seg'] = self.semantic(probs, all_masks)
        if on['panoptic']:
            is_thing = text_is_thing(img_meta, probs.size(1), 'panoptic')
            keep = self.panoptic_candidates(probs)
            out['pred_panoptic_seg'] = self.panoptic(
                probs[keep], masks_of(keep), is_thing, query_index=keep)
        if on['foreground']:
            out['pred_fg'] = self.foreground(probs, all_masks)
        return out

    def masks_to_image(self, mask_pred: Tensor, img_meta: dict,
                       rescale: bool) -> Tensor:
        """(N, h, w) logits -> (N, H, W) logits at the (original) image size."""
        pad_h, pad_w = img_meta['batch_input_shape']
        img_h, img_w = img_meta['img_shape']
        masks = F.interpolate(mask_pred[None], size=(pad_h, pad_w),
                              mode='bilinear', align_corners=False)[0]
        masks = masks[:, :img_h, :img_w]
        if rescale and tuple(img_meta['ori_shape'][:2]) != (img_h, img_w):
            masks = F.interpolate(masks[None], size=img_meta['ori_shape'][:2],
                                  mode='bilinear', align_corners=False)[0]
        return masks

    def boxes_to_image(self, bbox_pred: Tensor, img_meta: dict,
                       rescale: bool) -> Tensor:
        """(N, 4) normalised cxcywh -> (N, 4) xyxy pixels."""
        img_h, img_w = img_meta['img_shape']
        boxes = bbox_cxcywh_to_xyxy(bbox_pred) * bbox_pred.new_tensor(
            [img_w, img_h, img_w, img_h])
        if rescale:
            sf = img_meta.get('scale_factor', (1., 1.))
            boxes = scale_boxes(boxes, [1 / s for s in sf])
            h, w = img_meta['ori_shape'][:2]
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        return boxes

    def instances(self, probs: Tensor, boxes: Tensor, masks_of,
                  with_masks: bool = True) -> InstanceData:
        """Top-k over queries x texts; score = class prob x mask quality.
        ``masks_of(query_idx)`` gives (K, H, W) mask probabilities for
        distinct query indices."""
        N, T = probs.shape
        k = min(self.test_cfg.get('max_per_img', 100), N * T)
        scores, idx = probs.flatten().topk(k)
        query, labels = idx // T, idx % T
        res = InstanceData(labels=labels, bboxes=boxes[query],
                           query_index=query)
        if with_masks:
            # one upsampled mask per distinct query; instances share them
            uniq, inverse = query.unique(return_inverse=True)
            m = masks_of(uniq)
            thr = self.test_cfg.get('mask_thr', 0.5)
            binary = m > thr
            # mean probability inside the mask: sum_{m > thr} m equals
            # sum(relu(m - thr)) + thr * area, without a masked copy
            area = binary.flatten(1).sum(1, dtype=torch.int32)
            quality = ((m - thr).clamp_(min=0).flatten(1).sum(1) +
                       thr * area) / area.clamp(min=1)
            res.masks = binary[inverse]
            res.scores = scores * quality[inverse]
            if self.test_cfg.get('box_source', 'head') == 'mask':
                res.bboxes = self.mask_boxes(binary, boxes[uniq])[inverse]
        else:
            res.scores = scores
        return res

    @staticmethod
    def mask_boxes(binary: Tensor, fallback: Tensor) -> Tensor:
        """xyxy boxes (K, 4) of binary masks (K, H, W) (mmdet's
        ``mask2bbox``, as Mask2Former's boxes); an empty mask keeps its
        ``fallback`` (K, 4) box from the box head."""
        boxes = mask2bbox(binary).to(fallback.dtype)
        empty = ~binary.flatten(1).any(1)
        boxes[empty] = fallback[empty]
        return boxes

    def semantic(self, probs: Tensor, mask_probs: Tensor) -> PixelData:
        """Per-pixel text index: argmax_t sum_n p(t|n) m_n(x).

        Texts are scored ``text_chunk`` at a time (default 128) with a running
        maximum, so a large vocabulary (LVIS 1,203, PC-459) never builds the
        (T, H, W) score volume; the result equals the unchunked argmax (ties
        go to the lower text index in both).
        """
        chunk = self.test_cfg.get('text_chunk', 128)
        best = best_idx = None
        for start in range(0, probs.size(1), chunk):
            seg = torch.einsum('nt,nhw->thw', probs[:, start:start + chunk],
                               mask_probs)
            val, idx = seg.max(0)
            idx = idx + start
            if best is None:
                best, best_idx = val, idx
            else:
                better = val > best
                best = torch.where(better, val, best)
                best_idx = torch.where(better, idx, best_idx)
        return PixelData(sem_seg=best_idx[None])

    def panoptic_scores(self, probs: Tensor) -> Tuple[Tensor, Tensor]:
        """Each query's panoptic score and text, (N, ) each: the softmax of
        the sigmoid probabilities at ``pano_temp`` picks the text, its
        sigmoid probability is the score."""
        temp = self.test_cfg.get('pano_temp', 0.06)
        cls = F.softmax(probs / temp, dim=-1) if temp else probs
        labels = cls.argmax(-1)
        return probs.gather(1, labels[:, None])[:, 0], labels

    def panoptic_candidates(self, probs: Tensor) -> Tensor:
        """Queries whose best text passes ``object_mask_thr`` (N', )."""
        scores = self.panoptic_scores(probs)[0]
        return torch.nonzero(
            scores > self.test_cfg.get('object_mask_thr', 0.25)).flatten()

    def panoptic(self, probs: Tensor, mask_probs: Tensor,
                 is_thing: Sequence[bool],
                 query_index: Optional[Tensor] = None) -> PixelData:
        """MaskDINO-style panoptic merging; void is ``T`` (number of texts).

        Each pixel goes to the kept query with the largest score x mask
        quality x mask probability (its ``owner``; the quality is the mean
        mask probability inside the query's binary mask, so a sure mask
        wins the pixels a vague one also claims). A thing query keeps its
        owned pixels if they are at least ``iou_thr`` of its binary mask. A
        stuff text makes one segment, so its duplicates are not each other's
        rivals: a stuff query is kept if at least ``iou_thr`` of its binary
        mask is owned by queries of its text (with the thing rule, duplicates
        that split a region each fall under ``iou_thr`` and the region is
        lost). With ``filter_low_score`` False a kept query's segment is every
        pixel it (stuff: its text) owns, also where its mask is under
        ``mask_thr``; the keep test is the same.

        Returns ``sem_seg`` (1, H, W), mmdet's encoding, and ``query_index``
        (1, H, W): the query that made each pixel's segment (-1 for void;
        ``query_index`` (N', ) maps the rows of ``probs`` to query ids).
        """
        T = probs.size(1)
        scores, labels = self.panoptic_scores(probs)
        keep = scores > self.test_cfg.get('object_mask_thr', 0.25)
        scores, labels, masks = scores[keep], labels[keep], mask_probs[keep]
        h, w = mask_probs.shape[-2:]
        pan = torch.full((h, w), T, dtype=torch.int64, device=probs.device)
        qmap = torch.full((h, w), -1, dtype=torch.int64, device=probs.device)
        if query_index is None:
            query_index = torch.arange(len(probs), device=probs.device)
        query_index = query_index[keep]
        if len(scores):
            binary = masks >= self.test_cfg.get('mask_thr', 0.5)
            # mask quality (Mask2Former's instance score): the mean
            # probability inside the binary mask
            quality = (masks * binary).flatten(1).sum(1) / \
                binary.flatten(1).sum(1).clamp(min=1)
            owner = ((scores * quality)[:, None, None] * masks).argmax(0)
            owner_label = labels[owner]  # (H, W)
            iou_thr = self.test_cfg.get('iou_thr', 0.8)
            inside = self.test_cfg.get('filter_low_score', True)
            instance_id = 1
            for k in scores.argsort(descending=True).tolist():
                label = int(labels[k])
                owned = (owner == k) if is_thing[label] else \
                    (owner_label == label)
                region = owned & binary[k]
                area, original = region.sum().item(), binary[k].sum().item()
                if area == 0 or original == 0 or area / original < iou_thr:
                    continue
                if not inside:
                    region = owned
                if is_thing[label]:
                    pan[region] = label + instance_id * INSTANCE_OFFSET
                    instance_id += 1
                    qmap[region] = query_index[k]
                else:  # one segment per stuff text
                    pan[region] = label
                    qmap[region & (qmap < 0)] = query_index[k]
        return PixelData(sem_seg=pan[None], query_index=qmap[None])

    def referring(self, probs: Tensor, boxes: Tensor,
                  masks_of) -> InstanceData:
        """One mask per text: the best-scoring query for each expression."""
        scores, query = probs.max(0)
        uniq, inverse = query.unique(return_inverse=True)
        binary = masks_of(uniq) > self.test_cfg.get('mask_thr', 0.5)
        return InstanceData(
            labels=torch.arange(probs.size(1), device=probs.device),
            scores=scores,
            bboxes=boxes[query],
            masks=binary[inverse],
            query_index=query)

    def foreground(self, probs: Tensor, mask_probs: Tensor) -> PixelData:
        """Soft foreground map (1, H, W) in [0, 1] for text 0: the per-pixel
        maximum over queries of p(text|query) x mask probability."""
        fg = (probs[:, 0, None, None] * mask_probs).amax(0)
        return PixelData(sem_seg=fg[None])

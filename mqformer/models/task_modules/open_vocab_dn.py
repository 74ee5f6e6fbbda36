"""Open-vocabulary query denoising: DINO's contrastive DN with text label embeddings."""
from typing import Tuple

import torch
from torch import Tensor

from mmdet.models.layers import CdnQueryGenerator
from mmdet.registry import MODELS
from mmdet.structures import SampleList


@MODELS.register_module()
class OpenVocabCdnQueryGenerator(CdnQueryGenerator):
    """mmdet's :class:`CdnQueryGenerator` whose label queries are the image's
    text embeddings instead of a fixed class embedding table.

    Label noise swaps a ground-truth text for another text of the same image
    (with probability ``label_noise_scale / 2``); box noise and the attention
    mask between denoising groups are DINO's.

    Args:
        embed_dims (int): query width (the projected text embedding width).
        num_matching_queries (int): N_c + N_l.
        label_noise_scale, box_noise_scale, group_cfg: as in DINO.
    """

    def __init__(self, embed_dims: int, num_matching_queries: int, **kwargs):
        super().__init__(
            num_classes=1,
            embed_dims=embed_dims,
            num_matching_queries=num_matching_queries,
            **kwargs)
        del self.label_embedding  # labels are embedded by the text encoder

    def __call__(self, batch_data_samples: SampleList, text_embeds: Tensor,
                 text_mask: Tensor) -> Tuple[Tensor, Tensor, Tensor, dict]:
        """
        Args:
            batch_data_samples: with ``gt_instances.bboxes`` (xyxy, pixels) and
                ``gt_instances.labels`` (indices into the image's texts).
            text_embeds (Tensor): (B, T, C) projected text embeddings.
            text_mask (Tensor): (B, T) True for real texts.

        Returns:
            tuple: label queries (B, N_dn, C), box queries (B, N_dn, 4)
            (inverse-sigmoid cxcywh), attention mask (N_dn + N_m, N_dn + N_m),
            and ``dn_meta`` with ``num_denoising_queries`` and
            ``num_denoising_groups``.
        """
        labels, bboxes = [], []
        for sample in batch_data_samples:
            img_h, img_w = sample.img_shape
            b = sample.gt_instances.bboxes
            bboxes.append(b / b.new_tensor([img_w, img_h, img_w, img_h]))
            labels.append(sample.gt_instances.labels)
        gt_labels, gt_bboxes = torch.cat(labels).long(), torch.cat(bboxes)
        batch_idx = torch.cat(
            [torch.full_like(t.long(), i) for i, t in enumerate(labels)])
        max_num_target = max(len(b) for b in bboxes)
        num_groups = self.get_num_groups(max_num_target)

        dn_label_query = self.generate_text_label_query(
            gt_labels, batch_idx, text_embeds, text_mask, num_groups)
        dn_bbox_query = self.generate_dn_bbox_query(gt_bboxes, num_groups)
        # mmdet collates into float32 zeros: cast (bf16 under CPU autocast)
        dn_label_query, dn_bbox_query = self.collate_dn_queries(
            dn_label_query.float(), dn_bbox_query.float(), batch_idx,
            len(batch_data_samples), num_groups)
        attn_mask = self.generate_dn_mask(
            max_num_target, num_groups, device=text_embeds.device)
        dn_meta = dict(
            num_denoising_queries=int(max_num_target * 2 * num_groups),
            num_denoising_groups=num_groups)
        return (dn_label_query.to(text_embeds.dtype), dn_bbox_query, attn_mask,
                dn_meta)

    def generate_text_label_query(self, gt_labels: Tensor, batch_idx: Tensor,
                                  text_embeds: Tensor, text_mask: Tensor,
                                  num_groups: int) -> Tensor:
        """Noisy label queries (2 * num_groups * num_gts, C) from texts."""
        labels = gt_labels.repeat(2 * num_groups)
        img = batch_idx.repeat(2 * num_groups)
        num_texts = text_mask.sum(1)[img]
        flip = torch.rand_like(labels.float()) < self.label_noise_scale * 0.5
        random_text = (torch.rand_like(labels.float()) *
                       num_texts.float()).long().clamp(max=text_mask.size(1) - 1)
        labels = torch.where(flip, random_text, labels)
        return text_embeds[img, labels]

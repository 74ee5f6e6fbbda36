"""How good the conditional queries are before the decoder: the recall of
ground-truth segments among the selected top-k encoder proposals' masks
(mask IoU >= 0.5), things and stuff apart. The query ablation's mechanism
study (why learnable queries lead early in training) reads it over training.
"""
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor


def mask_recall(pred_masks: Tensor, gt_masks: Tensor,
                iou_thr: float = 0.5) -> Tensor:
    """Which ground-truth masks some predicted mask covers.

    Args:
        pred_masks (Tensor): (K, H, W) bool.
        gt_masks (Tensor): (G, H, W) bool.
        iou_thr (float): the mask IoU that counts as found.

    Returns:
        Tensor: (G, ) bool, True where a prediction has IoU >= ``iou_thr``.
    """
    if not len(gt_masks) or not len(pred_masks):
        return torch.zeros(len(gt_masks), dtype=torch.bool)
    p = pred_masks.flatten(1).float()
    g = gt_masks.flatten(1).float()
    inter = g @ p.T
    union = g.sum(1)[:, None] + p.sum(1)[None] - inter
    return (inter / union.clamp(min=1) >= iou_thr).any(1)


@torch.no_grad()
def selected_proposal_masks(model, batch_inputs: Tensor,
                            batch_data_samples) -> List[Tensor]:
    """The conditional queries' masks as the selection hands them to the
    decoder (``mask_embed(norm(content)) . mask_features``, the masks that
    mask-enhanced anchors box): per image (K, h, w) logits at its valid
    ``img_shape``.

    Args:
        model (MQFormer): in eval mode.
        batch_inputs (Tensor): (B, 3, H, W) preprocessed.
        batch_data_samples (list): with ``img_shape``, ``batch_input_shape``
            and the texts.
    """
    feats = model.extract_feat(batch_inputs)
    encoder_inputs, text = model.pre_transformer(feats, batch_data_samples)
    enc = model.forward_encoder(**encoder_inputs)
    content, _, _ = model.select_queries(
        enc['memory'], enc['memory_mask'], enc['spatial_shapes'],
        text['text_embeds'], text['text_mask'], enc['mask_features'],
        batch_data_samples)
    embed = model.bbox_head.mask_embed(model.decoder.norm(content))
    logits = torch.einsum('bkc,bchw->bkhw', embed, enc['mask_features'])
    H, W = batch_data_samples[0].batch_input_shape
    logits = F.interpolate(logits, size=(H, W), mode='bilinear',
                           align_corners=False)
    return [m[:, :s.img_shape[0], :s.img_shape[1]]
            for m, s in zip(logits, batch_data_samples)]


def gt_masks_of(sample) -> Tensor:
    """(G, h, w) bool ground-truth masks of a sample (at ``img_shape``, or
    at ``ori_shape`` where the pipeline loads them after resizing, as the
    evaluation pipelines do)."""
    masks = sample.gt_instances.masks
    return masks.to_tensor(torch.bool, 'cpu') if hasattr(
        masks, 'to_tensor') else masks.bool().cpu()


class ProposalRecall:
    """Accumulates the recall of ground-truth things and stuff among the
    selected proposals over batches.

    Example::

        recall = ProposalRecall()
        for data in loader:
            data = model.data_preprocessor(data, False)
            recall.process(model, data['inputs'], data['data_samples'])
        recall.compute()  # {'thing recall %': ..., 'stuff recall %': ...}
    """

    def __init__(self, iou_thr: float = 0.5) -> None:
        self.iou_thr = iou_thr
        self.found = dict(thing=0, stuff=0)
        self.total = dict(thing=0, stuff=0)

    def process(self, model, batch_inputs: Tensor, batch_data_samples) -> None:
        masks = selected_proposal_masks(model, batch_inputs,
                                        batch_data_samples)
        for logits, sample in zip(masks, batch_data_samples):
            gt = gt_masks_of(sample)
            if tuple(logits.shape[-2:]) != tuple(gt.shape[-2:]):
                logits = F.interpolate(logits[None], size=gt.shape[-2:],
                                       mode='bilinear',
                                       align_corners=False)[0]
            found = mask_recall(logits.cpu() > 0, gt, self.iou_thr)
            is_thing = sample.metainfo.get('text_is_thing')
            labels = sample.gt_instances.labels.tolist()
            for f, label in zip(found.tolist(), labels):
                kind = 'thing' if is_thing is None or is_thing[label] \
                    else 'stuff'
                self.found[kind] += int(f)
                self.total[kind] += 1

    def compute(self) -> Dict[str, float]:
        """Recall in % (``None`` where there was no such segment) and the
        counts."""
        out = {}
        for kind in ('thing', 'stuff'):
            n = self.total[kind]
            out[f'{kind} recall %'] = round(
                100 * self.found[kind] / n, 2) if n else None
            out[f'{kind} segments'] = n
        return out


def checkpoint_proposal_recall(cfg, checkpoint: str,
                               iou_thr: float = 0.5) -> Dict[str, float]:
    """:class:`ProposalRecall` of a checkpoint over a config's test images
    (a panoptic evaluation config: its pipeline loads every segment, things
    and stuff, as ground truth).

    Args:
        cfg (Config): the evaluation config (model + ``test_dataloader``).
        checkpoint (str): the weights.
    """
    from mmengine.runner import Runner

    from ..apis.inferencer import init_model
    model = init_model(cfg, checkpoint)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    recall = ProposalRecall(iou_thr)
    with torch.no_grad():
        for data in loader:
            data = model.data_preprocessor(data, False)
            recall.process(model, data['inputs'], data['data_samples'])
    return recall.compute()

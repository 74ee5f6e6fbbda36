"""How the joint Hungarian matching shares the ground truth between the two
query types: of the ground-truth things (and stuff) the last decoder layer's
matching assigns, the share that goes to conditional queries (and to
learnable ones). The query ablation's mechanism study reads it over training
beside the proposal recall: a type that is rarely matched is rarely taught.
"""
from typing import Dict, List, Sequence

import torch
from torch import Tensor

from ..models.layers import QuerySplit


class MatchingShare:
    """Counts of matched ground truth per kind (thing / stuff) and query
    type (conditional / learnable)."""

    def __init__(self) -> None:
        self.counts = {(k, t): 0 for k in ('thing', 'stuff')
                       for t in ('conditional', 'learnable')}
        self.unmatched = dict(thing=0, stuff=0)

    def update(self, pos_inds: Tensor, pos_gt_inds: Tensor,
               gt_is_thing: Tensor, split: QuerySplit) -> None:
        """One image's assignment.

        Args:
            pos_inds (Tensor): (P, ) matched queries, indices into the
                matching queries ``[conditional | learnable]``.
            pos_gt_inds (Tensor): (P, ) their ground truth.
            gt_is_thing (Tensor): (M, ) bool per ground truth.
            split (QuerySplit): the batch's query layout.
        """
        learnable = pos_inds >= split.num_conditional
        thing = gt_is_thing[pos_gt_inds]
        for kind, mask in (('thing', thing), ('stuff', ~thing)):
            self.counts[kind, 'learnable'] += int((learnable & mask).sum())
            self.counts[kind, 'conditional'] += int((~learnable & mask).sum())
        matched = torch.zeros(len(gt_is_thing), dtype=torch.bool)
        matched[pos_gt_inds.cpu()] = True
        self.unmatched['thing'] += int((~matched & gt_is_thing.cpu()).sum())
        self.unmatched['stuff'] += int((~matched & ~gt_is_thing.cpu()).sum())

    def compute(self) -> Dict[str, float]:
        """``things to conditional %`` and ``stuff to learnable %`` (of the
        matched ground truth; ``None`` where none), the counts, and the
        ground truth left unmatched (more ground truth than queries)."""
        out = {}
        for kind, own in (('thing', 'conditional'), ('stuff', 'learnable')):
            n = sum(self.counts[kind, t] for t in ('conditional', 'learnable'))
            label = 'things' if kind == 'thing' else 'stuff'
            out[f'{label} matched to {own} %'] = round(
                100 * self.counts[kind, own] / n, 2) if n else None
            out[f'{kind} matched'] = n
            out[f'{kind} unmatched'] = self.unmatched[kind]
        return out


def record_matching(model, share: MatchingShare, batch_inputs: Tensor,
                    batch_data_samples: Sequence) -> None:
    """Run ``model.loss`` on a batch (no gradient) and add the last decoder
    layer's assignment of every image to ``share``.

    Args:
        model (MQFormer): a mixed (or single-type) model.
        batch_inputs (Tensor): (B, 3, H, W) preprocessed.
        batch_data_samples (list): with ``gt_instances`` (labels, masks)
            and the texts' ``text_is_thing``.
    """
    head = model.bbox_head
    seen: List = []
    loss, get_targets = head.loss, head.get_targets

    def loss_recording(hidden_states, *args, **kwargs):
        # (L + 1, B, N, C): the sets before the first layer and after each
        seen.append((len(hidden_states), kwargs.get(
            'query_split', args[5] if len(args) > 5 else None)))
        return loss(hidden_states, *args, **kwargs)

    def targets_recording(pred_sets, gts, metas, mask_features):
        out = get_targets(pred_sets, gts, metas, mask_features)
        seen.append((out, gts, metas))
        return out

    head.loss, head.get_targets = loss_recording, targets_recording
    try:
        with torch.no_grad():
            model.loss(batch_inputs, batch_data_samples)
    finally:
        del head.loss, head.get_targets  # the class's methods again
    (num_sets, split), (assignments, gts, metas) = seen[0], seen[-1]
    # the sets are the decoder outputs in order, then the encoder proposals
    last = num_sets - 1
    for b, (gt, meta) in enumerate(zip(gts, metas)):
        pos, pos_gt = assignments[last][0][b], assignments[last][1][b]
        share.update(pos, pos_gt, head.gt_is_thing(gt.labels, meta), split)


def checkpoint_matching_share(cfg, checkpoint: str) -> Dict[str, float]:
    """:class:`MatchingShare` of a checkpoint over a config's test images
    (a panoptic evaluation config: every segment is ground truth).

    Args:
        cfg (Config): the evaluation config (model + ``test_dataloader``).
        checkpoint (str): the weights.
    """
    from mmengine.runner import Runner

    from ..apis.inferencer import init_model
    model = init_model(cfg, checkpoint)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    share = MatchingShare()
    for data in loader:
        data = model.data_preprocessor(data, False)
        for sample in data['data_samples']:
            to_input_scale(sample)
        record_matching(model, share, data['inputs'], data['data_samples'])
    return share.compute()


def to_input_scale(sample) -> None:
    """An evaluation sample's ground truth (loaded at the original image
    size) resized to its ``img_shape``, as training sees it, in place."""
    gt = sample.gt_instances
    h, w = sample.img_shape[:2]
    masks = gt.get('masks', None)
    if masks is None or (masks.height, masks.width) == (h, w):
        return
    sy, sx = h / masks.height, w / masks.width
    gt.masks = masks.resize((h, w))
    if 'bboxes' in gt:
        boxes = gt.bboxes
        if hasattr(boxes, 'rescale_'):
            boxes.rescale_((sx, sy))
        else:
            gt.bboxes = boxes * boxes.new_tensor([sx, sy, sx, sy])

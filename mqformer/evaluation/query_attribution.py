"""Which query type made each ground-truth segment (paper section 4.1), and
why a segment nobody made was missed."""
from typing import Dict, List, Sequence

import numpy as np

QUERY_TYPES = ('conditional', 'learnable')
# why a ground-truth segment is not in the panoptic output, most to least
# nearly found first
MISS_REASONS = ('lost in merge', 'wrong text', 'low score', 'no mask')


def attribute_segments(gt_masks: np.ndarray, gt_is_thing: Sequence[bool],
                       pan: np.ndarray, query_map: np.ndarray,
                       num_conditional: int,
                       iou_thr: float = 0.5) -> List[Dict]:
    """Match each ground-truth segment to the predicted panoptic segment
    that covers it (IoU >= ``iou_thr``; at most one can, as predicted
    segments do not overlap) and name the query type that made it.

    Args:
        gt_masks (np.ndarray): (G, H, W) bool.
        gt_is_thing (Sequence[bool]): (G, ).
        pan (np.ndarray): (H, W) predicted panoptic ids (mmdet's encoding;
            any id works, void included: it never matches a query).
        query_map (np.ndarray): (H, W) the query of each pixel's segment,
            -1 for void (``pred_panoptic_seg.query_index``).
        num_conditional (int): matching queries are laid out
            ``[conditional | learnable]``.

    Returns:
        list[dict]: per ground-truth segment ``is_thing``, ``iou`` and
        ``query_index`` / ``query_type`` (None when nothing covers it).
    """
    out = []
    ids, inverse = np.unique(pan, return_inverse=True)
    inverse = inverse.reshape(pan.shape)
    areas = np.bincount(inverse.ravel(), minlength=len(ids))
    for mask, is_thing in zip(gt_masks.astype(bool), gt_is_thing):
        rec = dict(is_thing=bool(is_thing), iou=0.0, query_index=None,
                   query_type=None)
        inter = np.bincount(inverse[mask], minlength=len(ids))
        union = areas + mask.sum() - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0)
        best = int(iou.argmax()) if len(iou) else -1
        if best >= 0 and iou[best] >= iou_thr:
            seg = inverse == best
            qs, counts = np.unique(query_map[seg], return_counts=True)
            q = int(qs[counts.argmax()])  # a stuff segment may merge queries
            if q >= 0:
                rec.update(iou=float(iou[best]), query_index=q,
                           query_type=QUERY_TYPES[int(q >= num_conditional)])
        out.append(rec)
    return out


def summarize(records: List[Dict]) -> Dict[str, Dict[str, float]]:
    """Per ``thing`` / ``stuff``: the number of segments, how many were
    found, and the share of the found ones each query type made (%)."""
    table = {}
    for kind, flag in (('thing', True), ('stuff', False)):
        recs = [r for r in records if r['is_thing'] == flag]
        found = [r for r in recs if r['query_type'] is not None]
        row = dict(segments=len(recs), found=len(found))
        for t in QUERY_TYPES:
            n = sum(r['query_type'] == t for r in found)
            row[t] = 100.0 * n / len(found) if found else 0.0
        table[kind] = row
    return table


def explain_misses(records: List[Dict], gt_masks: np.ndarray,
                   gt_labels: Sequence[int], probs: np.ndarray,
                   mask_probs: np.ndarray, num_conditional: int,
                   iou_thr: float = 0.5, score_thr: float = 0.25,
                   mask_thr: float = 0.5) -> List[Dict]:
    """Add ``miss`` (one of :data:`MISS_REASONS`) to every record of
    :func:`attribute_segments` that nothing covers, from the model's raw
    outputs. Only queries whose binary mask reaches ``iou_thr`` with the
    segment ("a mask") count; the first reason that fits:

    - ``lost in merge``: such a query's best text is the segment's and scores
      over ``score_thr`` (the panoptic ``object_mask_thr``), yet the merge
      gave its pixels to others;
    - ``wrong text``: one scores the segment's text over ``score_thr``, but
      another text higher;
    - ``low score``: they all score the segment's text at most ``score_thr``;
    - ``no mask``: no query's mask covers the segment.

    ``miss_query`` / ``miss_query_type`` name the query with a mask that
    scores the segment's text highest (None for ``no mask``), ``miss_score``
    its score.

    Args:
        records (list[dict]): :func:`attribute_segments`'s, in ``gt_masks``
            order; updated in place and returned.
        gt_masks (np.ndarray): (G, H, W) bool.
        gt_labels (Sequence[int]): (G, ) text index of each segment.
        probs (np.ndarray): (N, T) text probabilities of every query.
        mask_probs (np.ndarray): (N, H, W) mask probabilities at the ground
            truth's size, or bool masks already thresholded (True >=
            ``mask_thr``).
    """
    binary = mask_probs >= mask_thr
    areas = binary.reshape(len(binary), -1).sum(1)
    for rec, mask, label in zip(records, gt_masks.astype(bool), gt_labels):
        if rec['query_type'] is not None:
            continue
        inter = (binary & mask).reshape(len(binary), -1).sum(1)
        union = areas + mask.sum() - inter
        covers = np.flatnonzero(inter >= iou_thr * np.maximum(union, 1))
        rec.update(miss='no mask', miss_query=None, miss_query_type=None,
                   miss_score=None)
        if not len(covers):
            continue
        score = probs[covers, label]
        best_text = probs[covers].argmax(1) == label
        passes = score > score_thr
        if (best_text & passes).any():
            reason, pool = 'lost in merge', covers[best_text & passes]
        elif passes.any():
            reason, pool = 'wrong text', covers[passes]
        else:
            reason, pool = 'low score', covers
        q = int(pool[probs[pool, label].argmax()])
        rec.update(miss=reason, miss_query=q, miss_score=float(probs[q, label]),
                   miss_query_type=QUERY_TYPES[int(q >= num_conditional)])
    return records


def summarize_misses(records: List[Dict]) -> Dict[str, Dict[str, int]]:
    """Per ``thing`` / ``stuff``: how many segments were missed for each of
    :data:`MISS_REASONS`, and ``by learnable`` (of the misses with a mask,
    those whose best mask is a learnable query's)."""
    table = {}
    for kind, flag in (('thing', True), ('stuff', False)):
        recs = [r for r in records if r['is_thing'] == flag and 'miss' in r]
        row = {m: sum(r['miss'] == m for r in recs) for m in MISS_REASONS}
        row['by learnable'] = sum(r['miss_query_type'] == 'learnable'
                                  for r in recs)
        table[kind] = row
    return table

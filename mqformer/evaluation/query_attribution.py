"""Which query type made each ground-truth segment (paper section 4.1)."""
from typing import Dict, List, Sequence

import numpy as np

QUERY_TYPES = ('conditional', 'learnable')


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

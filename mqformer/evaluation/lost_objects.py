"""Where a model loses ground-truth segments, stage by stage.

Model-agnostic: it reads the fusion-head inputs a
:class:`~mqformer.evaluation.threshold_calibration.PostProcessCache`
recorded (MQ-Former or mmdet's Mask2Former/MaskFormer) and the final
panoptic output, so two models are counted by one rule. Each ground-truth
segment (crowd regions left out) falls in the first stage that fits:

- ``found``: a segment of the panoptic output with its name covers it
  (IoU >= 0.5);
- ``no mask``: no query's binary mask covers it (IoU >= 0.5);
- ``wrong class``: queries' masks cover it, none names it (its best class);
- ``low score``: a covering query names it, none above ``object_mask_thr``;
- ``lost in merge``: a covering query names it above the threshold, and
  the merge gave its pixels to others (a duplicate or better-scored query)
  or dropped it (``iou_thr``).

For the segments lost in the merge, ``merge_pixels`` says where their
pixels went in the output (:data:`TAKERS`): to a segment of their own name
(too small or split, IoU < 0.5), to a thing, to another stuff name, or to
void (no kept query, or a dropped one). For the stuff segments lost in the
merge to another stuff name, ``merge_owners`` describes the owner (the
query of the name that took the most pixels with the most of the segment):
a ``duplicate`` (its binary mask covers the lost segment, IoU >= 0.5), of
an ``absent name`` (no segment of its name in the image), and its score
against the best right-named covering query's (``owner score``, ``right
score``: sums).
``stuff_queries`` counts the stuff-named queries above the threshold in
the ``images``.
"""
import json
import os.path as osp
from collections import Counter
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET

STAGES = ('found', 'lost in merge', 'low score', 'wrong class', 'no mask')
TAKERS = ('own name', 'thing', 'other stuff', 'void')
OWNERS = ('segments', 'duplicate', 'absent name', 'owner score',
          'right score')


def query_outputs(cache, classes: Sequence[str] = ()
                  ) -> Iterator[Tuple[dict, List[str], torch.Tensor,
                                      torch.Tensor, torch.Tensor]]:
    """Per image of ``cache``: (meta, names, labels (N,), scores (N,),
    masks (N, H, W) bool at the original image size). ``labels`` index
    ``names``; the panoptic rule of each head decides label and score.
    ``classes``: the dataset's class names (mmdet heads have no texts)."""
    head = cache.head
    for args, kwargs in cache.calls:
        if len(args) > 3 and isinstance(args[3], dict):  # MQFusionHead
            cls, _, mask_pred, meta = args[:4]
            rescale = args[4] if len(args) > 4 else kwargs.get('rescale',
                                                               True)
            scores, labels = head.panoptic_scores(cls.sigmoid())
            masks = head.masks_to_image(mask_pred, meta, rescale).sigmoid()
            yield (meta, list(meta['texts']), labels, scores,
                   masks >= head.test_cfg.get('mask_thr', 0.5))
            continue
        mask_cls, mask_pred, samples = args[:3]  # MaskFormerFusionHead
        for b, sample in enumerate(samples):
            meta = sample.metainfo
            h, w = meta['img_shape'][:2]
            m = mask_pred[b][:, :h, :w]
            m = F.interpolate(m[:, None], size=meta['ori_shape'][:2],
                              mode='bilinear', align_corners=False)[:, 0]
            probs = F.softmax(mask_cls[b], -1)
            # the best real class; a query whose best is "no object" is
            # never kept by the merge: score 0
            scores, labels = probs[:, :-1].max(-1)
            scores = scores * (probs.argmax(-1) != probs.size(1) - 1)
            yield meta, list(classes), labels, scores, m.sigmoid() >= 0.5


def _ground_truth(ann_file: str, seg_prefix: str) -> Dict[str, dict]:
    """png file name -> {'segments': [...], 'png': path}; names on each
    segment from the json's categories; ``None`` -> the stuff names."""
    data = json.load(open(ann_file))
    cats = {c['id']: c for c in data['categories']}
    out = {None: {c['name'] for c in cats.values() if not c['isthing']}}
    for ann in data['annotations']:
        segs = [dict(s, name=cats[s['category_id']]['name'],
                     isthing=bool(cats[s['category_id']]['isthing']))
                for s in ann['segments_info']]
        out[ann['file_name']] = dict(segments=segs,
                                     png=osp.join(seg_prefix,
                                                  ann['file_name']))
    return out


def _segment_ids(png: str) -> np.ndarray:
    import cv2
    rgb = cv2.imread(png)[..., ::-1].astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _iou(masks: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool, (H, W) bool -> (N, ) IoU."""
    inter = (masks & gt).flatten(1).sum(1).float()
    union = (masks | gt).flatten(1).sum(1).float()
    return inter / union.clamp(min=1)


def lost_objects(cache, ann_file: str, seg_prefix: str,
                 classes: Sequence[str] = ()) -> dict:
    """Count every ground-truth segment of the cached images in
    :data:`STAGES`, for things and stuff: ``{'thing': {stage: n},
    'stuff': {...}, 'mask_iou': {'thing': mean best query IoU, ...},
    'merge_pixels': {'thing': {taker: pixels}, 'stuff': ...}}`` (the
    pixels of the segments lost in the merge, by :data:`TAKERS`).
    The final output is the cache replayed at the head's ``test_cfg``."""
    gts = _ground_truth(ann_file, seg_prefix)
    thr = cache.head.test_cfg.get('object_mask_thr', 0.8)
    finals = cache.replay()
    counts = dict(thing=Counter(), stuff=Counter())
    best = dict(thing=[], stuff=[])
    taken = dict(thing=Counter(), stuff=Counter())
    owners = Counter()
    outputs = list(query_outputs(cache, classes))
    if len(outputs) != len(finals):
        raise RuntimeError('lost_objects: replay and recorded images differ')
    for (meta, names, labels, scores, masks), final in zip(outputs, finals):
        png = osp.basename(meta['img_path']).rsplit('.', 1)[0] + '.png'
        if png not in gts:
            raise KeyError(f'{png}: not in {ann_file}')
        ids = torch.from_numpy(_segment_ids(gts[png]['png']))
        pan = final.pred_panoptic_seg.sem_seg[0].cpu()
        final_names = {v: names[v % INSTANCE_OFFSET]
                       for v in pan.unique().tolist()
                       if v % INSTANCE_OFFSET < len(names)}  # not void
        segs = [s for s in gts[png]['segments'] if not s.get('iscrowd')]
        present = {s['name'] for s in segs}
        named = [names[int(l)] for l in labels]
        kept = scores > thr
        owners['stuff queries'] += sum(
            n in gts[None] for n, k in zip(named, kept.tolist()) if k)
        for seg in segs:
            kind = 'thing' if seg['isthing'] else 'stuff'
            gt = ids == seg['id']
            if not gt.any():
                continue
            found = any(name == seg['name'] and
                        _iou((pan == v)[None], gt)[0] >= 0.5
                        for v, name in final_names.items())
            iou = _iou(masks, gt)
            best[kind].append(float(iou.max()) if len(iou) else 0.0)
            good = iou >= 0.5
            right = good & torch.tensor([n == seg['name'] for n in named],
                                        dtype=torch.bool)
            if found:
                stage = 'found'
            elif not good.any():
                stage = 'no mask'
            elif not right.any():
                stage = 'wrong class'
            elif not (scores[right] > thr).any():
                stage = 'low score'
            else:
                stage = 'lost in merge'
                for v, n in zip(*pan[gt].unique(return_counts=True)):
                    v, n = int(v), int(n)
                    if v not in final_names:
                        taker = 'void'
                    elif final_names[v] == seg['name']:
                        taker = 'own name'
                    else:
                        taker = 'thing' if v >= INSTANCE_OFFSET else \
                            'other stuff'
                    taken[kind][taker] += n
                if kind == 'stuff':
                    owners.update(_owner(pan[gt], final_names, seg['name'],
                                         named, scores, kept, masks, gt,
                                         iou, right, present))
            counts[kind][stage] += 1
    return dict(
        thing={s: counts['thing'][s] for s in STAGES},
        stuff={s: counts['stuff'][s] for s in STAGES},
        mask_iou={k: float(np.mean(v)) if v else 0.0
                  for k, v in best.items()},
        merge_pixels={k: {t: taken[k][t] for t in TAKERS}
                      for k in ('thing', 'stuff')},
        merge_owners=dict({o: owners[o] for o in OWNERS},
                          stuff_queries=owners['stuff queries'],
                          images=len(outputs)))


def _owner(taken: torch.Tensor, final_names: dict, name: str,
           named: List[str], scores: torch.Tensor, kept: torch.Tensor,
           masks: torch.Tensor, gt: torch.Tensor, iou: torch.Tensor,
           right: torch.Tensor, present: set) -> Counter:
    """A stuff segment lost in the merge (``taken``: the output ids of its
    pixels): the kept query of the other stuff name that took the most of
    its pixels, the query with the most of the segment, counted by
    :data:`OWNERS` (nothing if no other stuff name took any)."""
    other = Counter()
    for v, n in zip(*taken.unique(return_counts=True)):
        v = int(v)
        if (v < INSTANCE_OFFSET and v in final_names
                and final_names[v] != name):
            other[final_names[v]] += int(n)
    if not other:
        return Counter()
    taker = other.most_common(1)[0][0]
    cand = kept & torch.tensor([n == taker for n in named], dtype=torch.bool)
    if not cand.any():
        return Counter()
    overlap = (masks & gt).flatten(1).sum(1).float()
    q = int(torch.where(cand, overlap, overlap.new_tensor(-1.0)).argmax())
    return Counter({'segments': 1, 'duplicate': int(iou[q] >= 0.5),
                    'absent name': int(taker not in present),
                    'owner score': float(scores[q]),
                    'right score': float(scores[right].max())})


def stages_table(rows: Dict[str, dict]) -> str:
    """Markdown: one line per (model, thing/stuff) with each stage's share
    of the ground-truth segments and the mean best query mask IoU."""
    lines = ['| model | segments | ' + ' | '.join(STAGES) +
             ' | mean best query IoU |', '|---' * (len(STAGES) + 3) + '|']
    for model, r in rows.items():
        for kind in ('thing', 'stuff'):
            n = sum(r[kind].values())
            cells = [f'{100 * r[kind][s] / max(n, 1):.1f}%' for s in STAGES]
            lines.append(f'| {model} {kind} | {n} | ' + ' | '.join(cells) +
                         f' | {r["mask_iou"][kind]:.2f} |')
    return '\n'.join(lines)


def count_lost(cfg, checkpoint: str, thresholds: dict = None,
               work_dir: str = None) -> dict:
    """:func:`lost_objects` of the model in ``cfg`` (an mmengine config)
    with weights ``checkpoint`` on its test images (``test_dataloader``;
    ground truth from the ``test_evaluator``'s ``CocoPanopticMetric``),
    at ``thresholds`` (panoptic ``test_cfg`` values, e.g. the calibrated
    ones) or the config's own."""
    import copy

    from mmengine.runner import Runner

    from mqformer.compat import checkpoint_io
    from .threshold_calibration import PostProcessCache, panoptic_metric
    cfg = copy.deepcopy(cfg)
    pan = panoptic_metric(cfg.test_evaluator, 'lost_objects: test_evaluator')
    cfg.work_dir = work_dir or cfg.get('work_dir') or 'work_dirs/lost'
    cfg.log_level = 'WARNING'
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler', 'val_dataloader', 'val_cfg',
                'val_evaluator'):
        cfg[key] = None
    cfg.load_from = None
    cfg.model.test_cfg.update(dict(thresholds or {}, panoptic_on=True))
    runner = Runner.from_cfg(cfg)
    with checkpoint_io():
        runner.load_checkpoint(checkpoint, map_location='cpu', strict=True)
    loader = runner.test_dataloader
    cache = PostProcessCache(runner.model).record(loader)
    classes = loader.dataset.metainfo.get('classes', ())
    return lost_objects(cache, pan['ann_file'], pan['seg_prefix'],
                        classes)

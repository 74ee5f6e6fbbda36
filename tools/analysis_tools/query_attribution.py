# Which query type made each ground-truth thing and stuff segment (paper
# section 4.1): runs a checkpoint over a config's panoptic test set, matches
# each ground-truth segment to the predicted segment covering it (IoU >= 0.5)
# and prints the thing/stuff x conditional/learnable split; draws the
# counter-cases (stuff made by conditional queries, things by learnable ones).
# For the segments nothing covers it prints why (misses.md): no query's mask
# covers it / the masks that do score its text under the panoptic threshold /
# their best text is another / lost in the merge, and whose mask it was.
#
#   python tools/analysis_tools/query_attribution.py \
#       configs/mqformer/shapes/mqformer_tiny_shapes_eval-panoptic.py CKPT \
#       [--out-dir work_dirs/attribution] [--max-pictures 8]
import argparse
import json
import os
import os.path as osp

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description='MQ-Former query attribution')
    p.add_argument('config', help='a config whose test_dataloader is a '
                   'panoptic set loaded with LoadPanopticSegments')
    p.add_argument('checkpoint')
    p.add_argument('--out-dir', default='work_dirs/query_attribution')
    p.add_argument('--iou-thr', type=float, default=0.5)
    p.add_argument('--max-pictures', type=int, default=8,
                   help='counter-case pictures to draw')
    p.add_argument('--max-images', type=int, default=None)
    return p.parse_args()


def counter_case(img_bgr, gt_mask, pan_mask, title, path):
    """The image with the ground-truth segment (green) and the predicted
    segment that took it (red) outlined."""
    import cv2
    out = img_bgr.copy()
    for m, colour in ((gt_mask, (0, 255, 0)), (pan_mask, (0, 0, 255))):
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colour, 2)
    for k, line in enumerate(title.split(' by ')):  # fits 96-px images
        line = line if k == 0 else 'by ' + line
        for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(out, line, (4, 14 + 14 * k), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, colour, width, cv2.LINE_AA)
    cv2.imwrite(path, out)


def attribute(cfg, checkpoint, out_dir, iou_thr=0.5, max_pictures=8,
              max_images=None, cfg_name='config'):
    """Attribution records (one per ground-truth segment) of ``checkpoint``
    over ``cfg``'s panoptic test set; counter-case pictures and
    attribution.md / misses.md / segments.json in ``out_dir``. Returns
    (records, table); ``summarize_misses(records)`` gives the misses table."""
    import mmcv
    import torch
    from mmengine.dataset import pseudo_collate

    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS, MODELS
    from mmdet.utils import register_all_modules
    from mqformer.apis import load_fitting_weights
    from mqformer.evaluation import (attribute_segments, explain_misses,
                                     summarize, summarize_misses)
    register_all_modules()

    cfg.model.test_cfg.update(panoptic_on=True)
    model = MODELS.build(cfg.model).eval()
    load_fitting_weights(model, checkpoint)
    fusion, raw = model.fusion_head, {}
    score_thr = fusion.test_cfg.get('object_mask_thr', 0.25)
    mask_thr = fusion.test_cfg.get('mask_thr', 0.5)

    def predict_and_keep(cls_score, bbox_pred, mask_pred, img_meta,
                         rescale=True):
        """The fusion head's predict, keeping every query's text
        probabilities and binary mask (bool: a quarter of the float memory)
        for :func:`explain_misses`."""
        raw['probs'] = cls_score.sigmoid().cpu().numpy()
        raw['masks'] = (fusion.masks_to_image(mask_pred, img_meta, rescale)
                        .sigmoid() >= mask_thr).cpu().numpy()
        return type(fusion).predict(fusion, cls_score, bbox_pred, mask_pred,
                                    img_meta, rescale)

    fusion.predict = predict_and_keep
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    pictures = osp.join(out_dir, 'counter_cases')
    os.makedirs(pictures, exist_ok=True)
    records, drawn = [], 0
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    for i in range(n):
        item = dataset[i]
        gt = item['data_samples'].gt_instances
        if 'masks' not in gt:
            raise KeyError(f'{cfg_name}: the test pipeline gives no masks '
                           '(use a panoptic set with LoadPanopticSegments)')
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([item]))[0]
        pan = sample.pred_panoptic_seg.sem_seg[0].cpu().numpy()
        qmap = sample.pred_panoptic_seg.query_index[0].cpu().numpy()
        masks = gt.masks.masks.astype(bool)
        if masks.shape[1:] != pan.shape:
            raise ValueError(f'{sample.img_path}: ground truth {masks.shape[1:]}'
                             f' vs prediction {pan.shape}: load the panoptic '
                             'PNG at the original size')
        thing = [sample.text_is_thing[int(l)] for l in gt.labels]
        recs = attribute_segments(masks, thing, pan, qmap,
                                  model.num_conditional, iou_thr)
        explain_misses(recs, masks, [int(l) for l in gt.labels],
                       raw['probs'], raw['masks'], model.num_conditional,
                       iou_thr, score_thr)
        for k, r in enumerate(recs):
            r.update(image=sample.img_path, text=sample.texts[int(
                gt.labels[k])])
            counter = (r['query_type'] == 'learnable' and r['is_thing']) or (
                r['query_type'] == 'conditional' and not r['is_thing'])
            if counter and drawn < max_pictures:
                img = mmcv.imread(sample.img_path)
                img = mmcv.imresize(img, pan.shape[::-1])
                seg = qmap == r['query_index']
                name = (f'{osp.splitext(osp.basename(sample.img_path))[0]}_'
                        f'{r["text"].replace(" ", "-")}.jpg')
                counter_case(img, masks[k], seg,
                             f'{r["text"]} ({"thing" if r["is_thing"] else "stuff"}'
                             f') by {r["query_type"]} query {r["query_index"]}',
                             osp.join(pictures, name))
                drawn += 1
        records.extend(recs)
    table = summarize(records)
    lines = ['| ground truth | segments | found (IoU >= '
             f'{iou_thr}) | by conditional queries | by learnable '
             'queries |', '| --- | --- | --- | --- | --- |']
    for kind, row in table.items():
        lines.append(f'| {kind} | {row["segments"]} | {row["found"]} | '
                     f'{row["conditional"]:.1f}% | {row["learnable"]:.1f}% |')
    text = '\n'.join(lines)
    with open(osp.join(out_dir, 'attribution.md'), 'w') as f:
        f.write(text + '\n')
    misses = summarize_misses(records)
    reasons = list(next(iter(misses.values())))
    lines = ['| missed | ' + ' | '.join(reasons) + ' |',
             '| --- ' * (len(reasons) + 1) + '|']
    for kind, row in misses.items():
        lines.append(f'| {kind} | ' + ' | '.join(str(row[r]) for r in reasons)
                     + ' |')
    miss_text = '\n'.join(lines)
    with open(osp.join(out_dir, 'misses.md'), 'w') as f:
        f.write(miss_text + '\n')
    with open(osp.join(out_dir, 'segments.json'), 'w') as f:
        json.dump(records, f)
    print(text + '\n\n' + miss_text)
    print(f'\n{n} images; {drawn} counter-case pictures in {pictures}')
    return records, table


def main():
    args = parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from mmengine.config import Config
    attribute(Config.fromfile(args.config), args.checkpoint, args.out_dir,
              args.iou_thr, args.max_pictures, args.max_images, args.config)


if __name__ == '__main__':
    main()

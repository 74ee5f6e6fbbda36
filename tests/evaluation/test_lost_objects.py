"""lost_objects puts every ground-truth segment in the first stage that
fits, by one rule for any fusion head."""
import json
import os.path as osp

import numpy as np
import torch


def one_image(tmp_path):
    """A written panoptic image: (ann file, png, names, is_thing, segment
    ids (H, W), segments, segment id -> name)."""
    import cv2

    from mqformer.testing import ShapesWorld, write_coco_panoptic
    ann = write_coco_panoptic(str(tmp_path), ShapesWorld(seed=2, max_objects=5,
                                                         min_objects=4),
                              1, 'val')
    data = json.load(open(ann))
    names = [c['name'] for c in data['categories']]
    is_thing = [bool(c['isthing']) for c in data['categories']]
    cat_name = {c['id']: c['name'] for c in data['categories']}
    png = osp.join(tmp_path, 'annotations', 'panoptic_val',
                   data['annotations'][0]['file_name'])
    rgb = cv2.imread(png)[..., ::-1].astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    segs = data['annotations'][0]['segments_info']
    name = {s['id']: cat_name[s['category_id']] for s in segs}
    return ann, png, names, is_thing, ids, segs, name


def cached(tmp_path, names, is_thing, masks, labels, logits, shape):
    """A PostProcessCache holding one MQFusionHead call: query ``masks``
    (bool arrays), each with one text ``labels`` at ``logits``."""
    from mqformer.evaluation.threshold_calibration import PostProcessCache
    from mqformer.models.heads.mq_fusion_head import MQFusionHead
    N, T = len(masks), len(names)
    cls = torch.full((N, T), -8.0)
    cls[torch.arange(N), torch.tensor(labels)] = torch.tensor(logits)
    mask_pred = torch.stack([torch.where(torch.from_numpy(m), 12.0, -12.0)
                             for m in masks])
    h, w = shape
    meta = dict(img_path=osp.join(tmp_path, 'val', 'val_00000.jpg'),
                ori_shape=(h, w), img_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0), texts=names, text_is_thing=is_thing)
    head = MQFusionHead(test_cfg=dict(panoptic_on=True, instance_on=False,
                                      object_mask_thr=0.3))
    cache = PostProcessCache.__new__(PostProcessCache)
    cache.head, cache.model = head, None
    cache.calls = [((cls, torch.zeros(N, 4), mask_pred, meta, True), {})]
    return cache


def test_each_stage_is_counted_where_the_segment_is_lost(tmp_path):
    import mqformer  # noqa: F401
    from mqformer.evaluation.lost_objects import STAGES, lost_objects
    ann, png, names, is_thing, ids, segs, name = one_image(tmp_path)
    things = [s for s in segs if is_thing[names.index(name[s['id']])]]
    stuff = [s for s in segs if s not in things]
    assert len(things) >= 4 and stuff
    masks, labels, logits = [], [], []

    def query(mask, name, logit):
        masks.append(mask)
        labels.append(names.index(name))
        logits.append(logit)
    gt = {s['id']: ids == s['id'] for s in segs}
    for s in stuff:
        query(gt[s['id']], name[s['id']], 4.0)
    lost, wrong, low, nomask = things[:4]
    for s in things[4:]:
        query(gt[s['id']], name[s['id']], 4.0)  # found
    # lost in merge: named right above the threshold, but a stuff query
    # with a higher score claims its pixels as well
    query(gt[lost['id']], name[lost['id']], 3.0)
    masks[0] = gt[stuff[0]['id']] | gt[lost['id']]
    logits[0] = 6.0
    other = next(n for n in names if is_thing[names.index(n)]
                 and n != name[wrong['id']])
    query(gt[wrong['id']], other, 4.0)  # wrong class
    query(gt[low['id']], name[low['id']], -4.0)  # low score
    # no mask: nothing covers `nomask`
    cache = cached(tmp_path, names, is_thing, masks, labels, logits,
                   ids.shape)
    out = lost_objects(cache, ann, osp.dirname(png))
    n_things = len(things)
    assert out['thing'] == dict(zip(STAGES, (n_things - 4, 1, 1, 1, 1)))
    # the stuff query that took the thing's pixels still covers its stuff
    # unless the thing was most of it
    assert sum(out['stuff'].values()) == len(stuff)
    assert out['stuff']['found'] >= len(stuff) - 1
    # every thing but `nomask` has a query mask equal to it
    assert out['mask_iou']['thing'] >= (n_things - 1) / n_things - 1e-6
    # the lost thing's pixels went to the stuff query that claimed them
    # (or to void, had that stuff query been dropped)
    taken = out['merge_pixels']['thing']
    assert sum(taken.values()) == int(gt[lost['id']].sum())
    assert taken['own name'] == taken['thing'] == 0
    if out['stuff']['found'] == len(stuff):
        assert taken['other stuff'] == int(gt[lost['id']].sum())
    else:
        assert taken['void'] > 0


def test_a_stuff_segment_lost_to_a_duplicate_of_an_absent_name(tmp_path):
    import mqformer  # noqa: F401
    from mqformer.evaluation.lost_objects import lost_objects
    ann, png, names, is_thing, ids, segs, name = one_image(tmp_path)
    stuff = [s for s in segs if not is_thing[names.index(name[s['id']])]]
    absent = [n for n, t in zip(names, is_thing)
              if not t and n not in name.values()]
    assert stuff and absent
    target = stuff[0]
    gt = ids == target['id']
    masks = [ids == s['id'] for s in stuff] + [gt]
    labels = [names.index(name[s['id']]) for s in stuff] + [
        names.index(absent[0])]
    # the right query scores 0.73, the wrong-named duplicate 0.95
    logits = [1.0] * len(stuff) + [3.0]
    cache = cached(tmp_path, names, is_thing, masks, labels, logits,
                   ids.shape)
    out = lost_objects(cache, ann, osp.dirname(png))
    assert out['stuff']['lost in merge'] == 1
    assert out['stuff']['found'] == len(stuff) - 1
    assert out['merge_pixels']['stuff']['other stuff'] == int(gt.sum())
    owners = out['merge_owners']
    assert owners['segments'] == owners['duplicate'] == 1
    assert owners['absent name'] == 1
    assert abs(owners['owner score'] - torch.tensor(3.0).sigmoid()) < 1e-5
    assert abs(owners['right score'] - torch.tensor(1.0).sigmoid()) < 1e-5
    assert owners['stuff_queries'] == len(stuff) + 1
    assert owners['images'] == 1

"""Round trips: every dataset adapter on its generated fixture gives back the
texts, boxes and mask areas the fixture wrote."""
import os.path as osp

import numpy as np
import pytest

from mqformer.testing import (ShapesWorld, write_ade_semantic,
                              write_coco_instances, write_coco_panoptic,
                              write_foreground, write_odvg, write_refcoco)

N = 4
SEED = 7


def world():
    return ShapesWorld(seed=SEED, gray_prob=0.3)


def truth():
    """What the fixture writers drew: per image (segments, shape)."""
    w = world()
    out = []
    for _ in range(N):
        img, segs, _ = w.sample()
        out.append((segs, img.shape[:2]))
    return out


def build(ds_cfg):
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return DATASETS.build(ds_cfg)


def unpack(item):
    s = item['data_samples']
    gt = s.gt_instances
    texts = list(s.texts)
    names = [texts[l] for l in gt.labels.tolist()]
    boxes = gt.bboxes.tensor.numpy() if hasattr(gt.bboxes, 'tensor') else \
        np.asarray(gt.bboxes)
    areas = gt.masks.masks.reshape(len(gt), -1).sum(1).tolist() \
        if 'masks' in gt else None
    return s, names, boxes, areas


def xyxy(seg):
    x, y, w, h = seg.bbox
    return [x, y, x + w, y + h]


PIPE_END = [dict(type='PackMQInputs')]


def check(item, segs, shape, keep=lambda s: True, with_masks=True):
    s, names, boxes, areas = unpack(item)
    segs = [g for g in segs if keep(g)]
    assert s.ori_shape == shape
    assert sorted(names) == sorted(g.name for g in segs)
    order = sorted(range(len(segs)), key=lambda i: (segs[i].name, segs[i].area))
    got = sorted(range(len(names)), key=lambda i: (names[i], areas[i] if areas
                                                    else 0))
    for a, b in zip(order, got):
        assert np.allclose(boxes[b], xyxy(segs[a]), atol=1.0)
        if with_masks:
            assert areas[b] == segs[a].area
    return s


def test_coco_instances(tmp_path):
    write_coco_instances(str(tmp_path), world(), N, 'val')
    ds = build(dict(
        type='CocoDataset', data_root=str(tmp_path),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'), return_classes=True, test_mode=True,
        metainfo=dict(classes=world().thing_classes),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                  dict(type='ClassNamesToTexts', num_negatives=3)] + PIPE_END))
    for i, (segs, shape) in enumerate(truth()):
        s = check(ds[i], segs, shape, keep=lambda g: g.is_thing)
        assert s.task == 'instance' and s.text_type == 'class'
        n_pos = len({g.name for g in segs if g.is_thing})
        assert len(s.texts) == n_pos + 3 == len(set(s.texts))


def test_coco_panoptic_things_and_stuff(tmp_path):
    write_coco_panoptic(str(tmp_path), world(), N, 'val')
    w = world()
    ds = build(dict(
        type='CocoPanopticDataset', data_root=str(tmp_path),
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        return_classes=True, test_mode=True,
        metainfo=dict(classes=w.thing_classes + w.stuff_classes,
                      thing_classes=w.thing_classes,
                      stuff_classes=w.stuff_classes),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadPanopticSegments'),
                  dict(type='ClassNamesToTexts', shuffle=False,
                       task='panoptic')] + PIPE_END))
    for i, (segs, shape) in enumerate(truth()):
        s = check(ds[i], segs, shape)
        assert s.texts == w.thing_classes + w.stuff_classes  # eval order
        assert s.text_is_thing == [t in w.thing_classes for t in s.texts]


def test_ade_semantic_one_mask_per_present_class(tmp_path):
    w = world()
    write_ade_semantic(str(tmp_path), w, N, 'validation')
    ds = build(dict(
        type='ADE20KSegDataset', data_root=str(tmp_path),
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        return_classes=True, test_mode=True,
        metainfo=dict(classes=w.thing_classes + w.stuff_classes),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=False,
                       with_label=False, with_seg=True,
                       reduce_zero_label=True),
                  dict(type='SemanticToInstances'),
                  dict(type='ClassNamesToTexts', task='semantic')] + [
            dict(type='PackMQInputs',
                 meta_keys=('img_path', 'ori_shape', 'img_shape', 'texts',
                            'text_type', 'task', 'with_mask', 'text_is_thing'))
        ]))
    truths = truth()
    for j in range(len(ds)):
        s, names, boxes, areas = unpack(ds[j])
        # the folder listing is unordered: the index is in the file name
        segs, shape = truths[int(osp.basename(s.img_path)[-9:-4])]
        per_class = {}
        for g in segs:
            per_class[g.name] = per_class.get(g.name, 0) + g.area
        assert sorted(names) == sorted(per_class)
        for n, a in zip(names, areas):
            assert a == per_class[n]
        assert s.gt_sem_seg.sem_seg.shape[-2:] == shape


def test_refcoco_phrases_one_per_target(tmp_path):
    write_refcoco(str(tmp_path), world(), N, splits=('val', ))
    ds = build(dict(
        type='RefCocoDataset', data_root=str(tmp_path),
        ann_file='refcoco/instances.json', split_file='refcoco/refs(unc).p',
        data_prefix=dict(img_path='train2014/'), split='val',
        text_mode='select_first',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_mask=True,
                       with_bbox=False, with_label=False),
                  dict(type='PhrasesToTexts', task='referring')] + PIPE_END))
    truths = truth()
    by_shape = {}
    for segs, shape in truths:
        by_shape.setdefault(shape, []).append(segs)
    assert len(ds) == N
    for i in range(len(ds)):
        s, names, boxes, areas = unpack(ds[i])
        assert s.text_type == 'phrase' and s.task == 'referring'
        segs = [g for g in by_shape[s.ori_shape][0] if g.is_thing]
        assert len(names) == len(segs)
        assert all(n.startswith('the ') for n in names)
        assert sorted(areas) == sorted(g.area for g in segs)


def test_odvg_grounding_boxes_only(tmp_path):
    write_odvg(str(tmp_path), world(), N)
    ds = build(dict(
        type='ODVGDataset', data_root=str(tmp_path),
        ann_file='vg_odvg.jsonl', data_prefix=dict(img='images/'),
        return_classes=True, test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='PhrasesToTexts', task='grounding')] + PIPE_END))
    for i, (segs, shape) in enumerate(truth()):
        s, names, boxes, areas = unpack(ds[i])
        assert areas is None and not s.with_mask  # detection-only sample
        assert len(names) == len(segs)
        got = sorted(map(tuple, np.round(boxes, 1).tolist()))
        assert got == sorted(tuple(np.round(xyxy(g), 1)) for g in segs)


def test_foreground_folders(tmp_path):
    write_foreground(str(tmp_path), world(), N)
    ds = build(dict(
        type='ForegroundDataset', data_root=str(tmp_path),
        data_prefix=dict(img='images', seg='masks'), test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadForegroundMask'),
                  dict(type='ClassNamesToTexts', task='foreground')] +
        PIPE_END))
    for i, (segs, shape) in enumerate(truth()):
        s, names, boxes, areas = unpack(ds[i])
        assert s.texts == ['foreground'] and s.task == 'foreground'
        assert areas == [sum(g.area for g in segs if g.is_thing)]


def test_seginw_style_coco_set(tmp_path):
    """A SeginW set is a COCO instance json with its own vocabulary."""
    w = ShapesWorld(seed=SEED, colors=('red', 'blue'), shapes=('circle', ))
    write_coco_instances(str(tmp_path), w, 3, 'valid')
    ds = build(dict(
        type='CocoDataset', data_root=str(tmp_path),
        ann_file='annotations/instances_valid.json',
        data_prefix=dict(img='valid/'), return_classes=True, test_mode=True,
        metainfo=dict(classes=w.thing_classes),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                  dict(type='ClassNamesToTexts', shuffle=False)] + PIPE_END))
    assert list(ds[0]['data_samples'].texts) == ['red circle', 'blue circle']

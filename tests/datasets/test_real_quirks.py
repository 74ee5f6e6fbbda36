"""Real dataset quirks that tidy fixtures hide: COCO panoptic crowd segments
as mmdet parses them, crowd boxes next to captions, spatial words under
flips, a new RefCOCO sentence per load, RefCOCO eval images kept out of COCO
training."""
import json
import os.path as osp
import pickle
import random

import cv2
import numpy as np
import pytest

from mqformer.testing import (ShapesWorld, write_coco_instances,
                              write_coco_panoptic, write_refcoco)


def registered():
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return DATASETS


def panoptic_cfg(root, pipeline, **kw):
    """mmdet's CocoPanopticDataset on a write_coco_panoptic fixture."""
    w = ShapesWorld()
    return dict(
        type='CocoPanopticDataset', data_root=str(root),
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(img='train2017/',
                         seg='annotations/panoptic_train2017/'),
        metainfo=dict(classes=w.thing_classes + w.stuff_classes,
                      thing_classes=w.thing_classes,
                      stuff_classes=w.stuff_classes),
        filter_cfg=dict(filter_empty_gt=False), pipeline=pipeline, **kw)


def panoptic_dataset(root, pipeline, **kw):
    return registered().build(panoptic_cfg(root, pipeline,
                                           return_classes=True, **kw))


def test_coco_panoptic_crowd_segments_are_not_trained_as_instances(tmp_path):
    write_coco_panoptic(str(tmp_path), ShapesWorld(seed=5), 4, 'train2017',
                        crowd_every=2)
    data = json.load(open(tmp_path / 'annotations/panoptic_train2017.json'))
    ds = panoptic_dataset(tmp_path, [
        dict(type='LoadImageFromFile'), dict(type='LoadPanopticSegments')])
    total_crowd = 0
    for i, ann in enumerate(data['annotations']):
        crowd = [s for s in ann['segments_info'] if s['iscrowd']]
        total_crowd += len(crowd)
        info = ds.get_data_info(i)
        # mmdet's parse: no iscrowd key, a crowd thing arrives is_thing=False
        assert all('iscrowd' not in s for s in info['segments_info'])
        out = ds[i]
        assert len(out['gt_masks']) == len(ann['segments_info']) - len(crowd)
        assert out.get('num_crowd_skipped', 0) == len(crowd)
        # no remaining mask covers a crowd segment's pixels
        png = cv2.imread(str(tmp_path / 'annotations/panoptic_train2017' /
                             ann['file_name']))[..., ::-1].astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        for s in crowd:
            assert out['gt_masks'].masks[:, ids == s['id']].sum() == 0
    assert total_crowd >= 2


def test_sample_captions_with_crowd_boxes(tmp_path):
    w = ShapesWorld(seed=3)
    write_coco_instances(str(tmp_path), w, 4, 'train', crowd_every=3)
    p = tmp_path / 'annotations/instances_train.json'
    data = json.load(open(p))
    for a in data['annotations']:
        a['captions'] = [f'caption {a["id"]}']
    json.dump(data, open(p, 'w'))
    ds = registered().build(dict(
        type='CocoTextDataset', data_root=str(tmp_path),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'), return_classes=True,
        metainfo=dict(classes=w.thing_classes),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='SampleCaptions'),
            dict(type='RandomFlipPhrases', prob=0.5),
            dict(type='PhrasesToTexts', shuffle=False),
            dict(type='PackMQInputs')]))
    crowd_ids = {a['id'] for a in data['annotations'] if a['iscrowd']}
    assert crowd_ids
    seen = 0
    for i in range(len(ds)):
        img_id = ds.get_data_info(i)['img_id']
        anns = [a for a in data['annotations'] if a['image_id'] == img_id]
        sample = ds[i]['data_samples']
        # the crowd boxes' captions are not texts, their boxes not targets
        texts = set(sample.texts)
        assert not texts & {f'caption {a}' for a in crowd_ids}
        assert texts == {f'caption {a["id"]}' for a in anns
                         if not a['iscrowd']}
        assert len(sample.gt_instances) == sum(not a['iscrowd'] for a in anns)
        seen += sum(a['iscrowd'] for a in anns)
    assert seen == len(crowd_ids)


def test_mirror_phrase_swaps_spatial_words_only():
    from mqformer.datasets.transforms import mirror_phrase
    assert mirror_phrase('the red circle left of the blue square') == \
        'the red circle right of the blue square'
    assert mirror_phrase('Right man, LEFTMOST cup, left-hand side') == \
        'Left man, RIGHTMOST cup, right-hand side'
    assert mirror_phrase('bright cleft') == 'bright cleft'  # not words


def flip_results(text=None, phrases=None):
    from mmdet.structures.bbox import HorizontalBoxes
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # white on the left
    r = dict(img=img, img_shape=(20, 40), ori_shape=(20, 40),
             gt_bboxes=HorizontalBoxes(np.array([[0, 0, 10, 20]],
                                                np.float32)))
    if text is not None:
        r['text'] = text
    if phrases is not None:
        r['phrases'] = phrases
    return r


@pytest.mark.parametrize('key', ['text', 'phrases'])
def test_random_flip_phrases_flips_words_with_the_image(key):
    registered()
    from mmdet.registry import TRANSFORMS
    flip = TRANSFORMS.build(dict(type='RandomFlipPhrases', prob=1.0))
    keep = TRANSFORMS.build(dict(type='RandomFlipPhrases', prob=0.0))
    text = ['the thing on the left', 'a square']
    kw = {'text': list(text)} if key == 'text' else {
        'phrases': {0: dict(phrase=text[0], tokens_positive=[[0, 5]]),
                    1: dict(phrase=text[1], tokens_positive=[[0, 1]])}}
    out = flip(flip_results(**kw))
    got = out['text'] if key == 'text' else [
        out['phrases'][i]['phrase'] for i in (0, 1)]
    assert got == ['the thing on the right', 'a square']
    assert out['img'][:, -10:].min() == 255  # the image flipped as well
    assert out['gt_bboxes'].tensor.tolist() == [[30, 0, 40, 20]]
    same = keep(flip_results(**kw))
    got = same['text'] if key == 'text' else [
        same['phrases'][i]['phrase'] for i in (0, 1)]
    assert got == text


def test_every_phrase_pipeline_flips_with_words():
    """One rule for phrase data: no plain RandomFlip after phrases exist."""
    from mmengine.config import Config
    from conftest import REPO
    names = ['refcoco.py', 'refcoco+.py', 'refcocog.py', 'vg_odvg.py',
             'objects365.py', 'shapes_world_multitask.py']
    checked = 0
    for n in names:
        cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets', n))
        for key, ds in cfg.items():
            if not isinstance(ds, dict) or 'pipeline' not in ds:
                continue
            types = [t['type'] for t in ds['pipeline']]
            if 'PhrasesToTexts' not in types or ds.get('test_mode'):
                continue
            assert 'RandomFlip' not in types, (n, key)
            if ds.get('split', 'train') == 'train':
                assert 'RandomFlipPhrases' in types, (n, key)
                checked += 1
    assert checked >= 6


@pytest.fixture()
def refcoco(tmp_path):
    w = ShapesWorld(seed=7)
    write_refcoco(str(tmp_path), w, 6, splits=('train', 'val', 'testA'))
    p = tmp_path / 'refcoco' / 'refs(unc).p'
    refs = pickle.load(open(p, 'rb'))
    for r in refs:  # three sentences per ref, as in RefCOCO
        base = r['sentences'][0]['raw']
        r['sentences'] = [dict(raw=f'{base} #{k}', sent=f'{base} #{k}',
                               tokens=[]) for k in range(3)]
    pickle.dump(refs, open(p, 'wb'))
    return tmp_path, refs


def test_refcoco_random_sentence_is_drawn_at_every_load(refcoco):
    root, refs = refcoco
    ds = registered().build(dict(
        type='RefCocoSentencesDataset', data_root=str(root),
        ann_file='refcoco/instances.json', split_file='refcoco/refs(unc).p',
        data_prefix=dict(img_path='train2014/'), split='train',
        text_mode='random', pipeline=[]))
    train = [r for r in refs if r['split'] == 'train']
    n_inst = sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds)))
    assert n_inst == len(train)  # one instance per ref, not per sentence
    random.seed(0)
    draws = [tuple(ds[0]['text']) for _ in range(12)]
    assert len(set(draws)) > 1  # a new draw per load
    random.seed(0)
    assert [tuple(ds[0]['text']) for _ in range(12)] == draws  # seeded
    info = ds.get_data_info(0)
    for text, group in zip(info['text'], info['ref_sentences']):
        assert text in group and len(group) == 3
        stem = group[0].rsplit(' #', 1)[0]
        assert all(s.startswith(stem) for s in group)  # one ref's sentences


def test_refcoco_eval_images_are_kept_out_of_coco_training(refcoco, tmp_path):
    root, refs = refcoco
    write_coco_panoptic(str(root), ShapesWorld(seed=8), 6, 'train2017')
    DATASETS = registered()
    from mmengine.logging import MMLogger
    import logging
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    MMLogger.get_current_instance().addHandler(handler)
    try:
        ds = DATASETS.build(dict(
            type='ExcludeImages',
            dataset=panoptic_cfg(root, []),
            ref_files=[str(root / 'refcoco' / 'refs(unc).p')]))
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    held_out = {r['image_id'] for r in refs if r['split'] != 'train'}
    assert held_out
    kept = {ds.get_data_info(i)['img_id'] for i in range(len(ds))}
    assert not kept & held_out
    assert kept == set(range(1, 7)) - held_out
    assert ds.num_removed == len(held_out)
    assert any(f'removed {len(held_out)} of 6 images' in m for m in records)
    assert len(ds[0]['img_path']) > 0

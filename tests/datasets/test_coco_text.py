"""CocoTextDataset: clear errors, logged skips, synthetic captions."""
import json
import os.path as osp

import numpy as np
import pytest

from mqformer.testing import ShapesWorld, write_coco_instances


@pytest.fixture()
def coco(tmp_path):
    write_coco_instances(str(tmp_path), ShapesWorld(seed=3), 3, 'val')
    return tmp_path


def edit(root, fn):
    p = osp.join(root, 'annotations', 'instances_val.json')
    data = json.load(open(p))
    fn(data)
    json.dump(data, open(p, 'w'))
    return data


def build(root, pipeline=()):
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return DATASETS.build(dict(
        type='CocoTextDataset', data_root=str(root),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'), return_classes=True, test_mode=True,
        metainfo=dict(classes=ShapesWorld().thing_classes),
        pipeline=list(pipeline)))


def test_unknown_category_is_an_error_naming_file_and_annotation(coco):
    edit(coco, lambda d: d['annotations'][1].update(category_id=999))
    with pytest.raises(ValueError, match=r'instances_val.json.*annotation 2.*999'):
        build(coco)


def test_zero_area_and_outside_boxes_are_logged_skips(coco):
    import logging
    from mmengine.logging import MMLogger

    def bad(d):
        d['annotations'][0]['area'] = 0
        d['annotations'][1]['bbox'] = [5000, 5000, 10, 10]
    data = edit(coco, bad)
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        ds = build(coco)
    finally:
        logger.removeHandler(handler)
    n = sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds)))
    assert n == len(data['annotations']) - 2
    log = '\n'.join(records)
    assert 'zero area or inverted box: 1 (ids [1])' in log
    assert 'box outside the image: 1 (ids [2])' in log


def test_captions_one_drawn_per_iteration_reproducibly(coco):
    def caps(d):
        for a in d['annotations']:
            a['captions'] = [f'caption {a["id"]} v{k}' for k in range(5)]
    edit(coco, caps)
    ds = build(coco, [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='SampleCaptions'),
        dict(type='PhrasesToTexts', shuffle=False),
        dict(type='PackMQInputs')])

    def draw(seed):
        np.random.seed(seed)
        s = ds[0]['data_samples']
        return [s.texts[l] for l in s.gt_instances.labels.tolist()]

    a, b, c = draw(0), draw(0), [tuple(draw(s)) for s in range(1, 8)]
    assert a == b  # seeded: reproducible
    assert len(set(c)) > 1  # a different caption on other draws
    ann0 = ds.get_data_info(0)['instances'][0]
    assert a[0].startswith('caption') and a[0] in ann0['captions']
    assert ds[0]['data_samples'].text_type == 'phrase'

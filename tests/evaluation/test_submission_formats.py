"""Leaderboard files through mmdet's own switch (tools/test.py with
test_evaluator.format_only=True and an output location), checked against
each format's spec: COCO instance/box json, COCO panoptic PNG + json, ADE20K
semantic PNGs in the server's ids, RefCOCO per-expression masks."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, generate_world

EVAL = osp.join(REPO, 'configs', 'mqformer', 'shapes',
                'mqformer_tiny_shapes_eval-{}.py')


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp('submission_world'), 2, 3)


def submit(task, checkpoint, *options):
    env = dict(os.environ, HF_HUB_OFFLINE='1')
    p = subprocess.run([sys.executable, 'tools/test.py', EVAL.format(task),
                        checkpoint, '--cfg-options', *options], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]


def image_sizes(ann_file):
    data = json.load(open(ann_file))
    return {im['id']: (im['height'], im['width']) for im in data['images']}, \
        {c['id'] for c in data['categories']}, data


def test_coco_instance_and_box_json(world, tiny_checkpoint, tmp_path):
    ann = f'{world}/annotations/instances_val.json'
    prefix = str(tmp_path / 'coco_test-dev')
    submit('instance', tiny_checkpoint,
           f'test_dataloader.dataset.data_root={world}/',
           f'test_evaluator.ann_file={ann}',
           'test_evaluator.format_only=True',
           f'test_evaluator.outfile_prefix={prefix}')
    sizes, cats, _ = image_sizes(ann)
    boxes = json.load(open(f'{prefix}.bbox.json'))
    segms = json.load(open(f'{prefix}.segm.json'))
    assert boxes and len(segms) == len(boxes)
    for r in boxes:
        assert set(r) >= {'image_id', 'category_id', 'bbox', 'score'}
        assert r['image_id'] in sizes and r['category_id'] in cats
        x, y, w, h = r['bbox']  # xywh
        assert w >= 0 and h >= 0 and 0 <= r['score'] <= 1
    for r in segms:
        rle = r['segmentation']
        assert rle['size'] == list(sizes[r['image_id']])
        assert isinstance(rle['counts'], str)
    assert {r['image_id'] for r in boxes} == set(sizes)


def test_coco_panoptic_png_and_json(world, tiny_checkpoint, tmp_path):
    ann = f'{world}/annotations/panoptic_val.json'
    prefix = str(tmp_path / 'panoptic_test-dev')
    submit('panoptic', tiny_checkpoint,
           f'test_dataloader.dataset.data_root={world}/',
           f'test_evaluator.ann_file={ann}',
           f'test_evaluator.seg_prefix={world}/annotations/panoptic_val/',
           'test_evaluator.format_only=True',
           f'test_evaluator.outfile_prefix={prefix}')
    sizes, cats, _ = image_sizes(ann)
    out = json.load(open(f'{prefix}.panoptic.json'))
    anns = out['annotations']
    assert {a['image_id'] for a in anns} == set(sizes)
    for a in anns:
        png = np.array(Image.open(osp.join(f'{prefix}.panoptic',
                                           a['file_name'])), np.int64)
        assert png.shape[:2] == sizes[a['image_id']]
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        seg_ids = {s['id'] for s in a['segments_info']}
        assert set(np.unique(ids)) - {0} == seg_ids  # 0 is void
        assert all(s['category_id'] in cats for s in a['segments_info'])


def test_ade20k_semantic_pngs_in_server_ids(world, tiny_checkpoint,
                                            tmp_path):
    out = str(tmp_path / 'ade_test')
    submit('semantic', tiny_checkpoint,
           f'test_dataloader.dataset.data_root={world}/ade/',
           'test_evaluator.format_only=True',
           f'test_evaluator.output_dir={out}')
    imgs = sorted(os.listdir(f'{world}/ade/images/validation'))
    pngs = sorted(os.listdir(out))
    assert [osp.splitext(p)[0] for p in pngs] == \
        [osp.splitext(i)[0] for i in imgs]
    num_classes = 22  # 18 shapes + 4 stuff, reduce_zero_label
    for img, png in zip(imgs, pngs):
        pred = np.array(Image.open(osp.join(out, png)))
        ref = Image.open(f'{world}/ade/images/validation/{img}')
        assert pred.dtype == np.uint8 and pred.shape == ref.size[::-1]
        assert 1 <= pred.min() and pred.max() <= num_classes  # ids 1..150


def test_refcoco_per_expression_masks(world, tiny_checkpoint, tmp_path):
    prefix = str(tmp_path / 'refcoco_testA')
    submit('referring', tiny_checkpoint,
           f'test_dataloader.dataset.data_root={world}/refcoco/',
           'test_evaluator.format_only=True',
           f'test_evaluator.outfile_prefix={prefix}')
    entries = json.load(open(f'{prefix}.json'))
    import pickle
    refs = pickle.load(open(f'{world}/refcoco/refcoco/refs(unc).p', 'rb'))
    val = [r for r in refs if r['split'] == 'val']
    assert len(entries) == len(val)  # one mask per expression
    texts = {r['sentences'][0]['raw'].lower() for r in val}
    inst = json.load(open(f'{world}/refcoco/refcoco/instances.json'))
    sizes = {im['id']: (im['height'], im['width']) for im in inst['images']}
    for e in entries:
        assert e['expression'] in texts
        m = np.array(Image.open(osp.join(prefix, e['mask'])))
        assert m.shape == sizes[e['image_id']]
        assert set(np.unique(m)) <= {0, 255}

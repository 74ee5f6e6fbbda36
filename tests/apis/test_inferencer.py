"""MQFormerInferencer and tools/infer.py on generated images, every task."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, TINY_CFG
from mqformer.testing import ShapesWorld

TEXTS = ['sky', 'grass', 'water', 'road', 'red circle', 'blue square']


@pytest.fixture(scope='module')
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    """A folder with an RGB JPEG, a grayscale PNG, an RGBA PNG and a corrupt
    file."""
    d = tmp_path_factory.mktemp('imgs')
    w = ShapesWorld(seed=4)
    img, _, _ = w.sample()
    cv2.imwrite(str(d / 'rgb.jpg'), img[..., ::-1])
    img, _, _ = w.sample()
    cv2.imwrite(str(d / 'gray.png'), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    img, _, _ = w.sample()
    rgba = np.concatenate([img[..., ::-1], np.full(img.shape[:2] + (1, ),
                                                   128, np.uint8)], -1)
    cv2.imwrite(str(d / 'rgba.png'), rgba)
    (d / 'broken.jpg').write_bytes(b'\x89PNG not really an image')
    return d


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    from mqformer.apis import MQFormerInferencer
    return MQFormerInferencer(TINY_CFG, checkpoint, score_thr=0.0)


@pytest.mark.parametrize('task', ['panoptic', 'instance', 'semantic',
                                  'referring', 'foreground', 'detection'])
def test_every_task_outputs_json_and_overlay(inferencer, images, tmp_path,
                                             task):
    from pycocotools import mask as mask_utils
    texts = ['the red circle left of the blue square', 'the sky'] \
        if task == 'referring' else (['foreground'] if task == 'foreground'
                                     else TEXTS)
    img = str(images / 'rgb.jpg')
    h, w = cv2.imread(img).shape[:2]
    res = inferencer(img, texts, task=task, stuff_texts=TEXTS[:4],
                     out_dir=str(tmp_path))[0]
    assert res['texts'] == texts and (res['height'], res['width']) == (h, w)
    saved = json.load(open(tmp_path / 'rgb.json'))
    assert saved == json.loads(json.dumps(res))
    assert osp.getsize(tmp_path / 'rgb.jpg') > 0
    key = dict(panoptic='panoptic', instance='instances',
               semantic='semantic', referring='instances',
               foreground='foreground', detection='instances')[task]
    assert key in res
    if task == 'referring':
        assert len(res['instances']) == len(texts)  # one mask per phrase
    if task == 'detection':
        assert all('mask' not in i and len(i['bbox']) == 4
                   for i in res['instances'])
    if task in ('instance', 'referring'):
        m = mask_utils.decode(res['instances'][0]['mask'])
        assert m.shape == (h, w)
    if task == 'semantic':
        total = sum(s['area'] for s in res['semantic'])
        assert total == h * w  # every pixel gets a text
    if task == 'panoptic':
        for s in res['panoptic']:
            assert s['is_thing'] == (s['text'] not in TEXTS[:4])
        stuff = [s['text'] for s in res['panoptic'] if not s['is_thing']]
        assert len(stuff) == len(set(stuff))  # one segment per stuff text


def test_grayscale_and_rgba_inputs(inferencer, images):
    for name in ('gray.png', 'rgba.png'):
        h, w = cv2.imread(str(images / name), cv2.IMREAD_UNCHANGED).shape[:2]
        res = inferencer(str(images / name), TEXTS, task='instance')[0]
        assert (res['height'], res['width']) == (h, w)
        assert res['instances'] and all(  # masks at the input's own size
            i['mask']['size'] == [h, w] for i in res['instances'])


def test_unreadable_file_is_a_clear_error(inferencer, images):
    with pytest.raises(ValueError, match='broken.jpg'):
        inferencer(str(images / 'broken.jpg'), TEXTS)
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        inferencer(str(images / 'nope.jpg'), TEXTS)
    with pytest.raises(ValueError, match='task'):
        inferencer(str(images / 'rgb.jpg'), TEXTS, task='depth')


def test_infer_tool_on_a_folder_keeps_going_past_a_corrupt_file(
        checkpoint, images, tmp_path):
    out = subprocess.run(
        [sys.executable, f'{REPO}/tools/infer.py', str(images), '--texts',
         'sky', 'red circle', '--task', 'instance', '--config', TINY_CFG,
         '--weights', checkpoint, '--out-dir', str(tmp_path)],
        capture_output=True, text=True)
    assert out.returncode == 1  # one image failed
    assert 'broken.jpg' in out.stderr and 'cannot decode' in out.stderr
    for name in ('rgb', 'gray', 'rgba'):
        assert (tmp_path / f'{name}.json').exists()
        assert (tmp_path / f'{name}.jpg').exists()
    assert '3 of 4 images done' in out.stdout


def test_every_prediction_names_its_query_and_type(inferencer, images):
    model = inferencer.model
    n_cond = model.num_conditional
    assert n_cond == 20 and model.num_learnable == 10
    for task, key in (('instance', 'instances'), ('panoptic', 'panoptic'),
                      ('referring', 'instances')):
        res = inferencer(str(images / 'rgb.jpg'), TEXTS, task=task)[0]
        assert res[key], task
        for item in res[key]:
            q = item['query_index']
            assert 0 <= q < n_cond + model.num_learnable
            assert item['query_type'] == ('learnable' if q >= n_cond else
                                          'conditional')
    sample = inferencer.predict(str(images / 'rgb.jpg'), TEXTS, 'instance')
    inst = sample.pred_instances
    assert torch.equal(inst.query_learnable, inst.query_index >= n_cond)


def test_init_model_does_not_warn_of_a_missing_checkpoint(checkpoint):
    """init_detector is called without weights (they are loaded after it):
    its "checkpoint is None, use COCO classes" warning must not reach the
    user, and the warning machinery is left as it was (a later warning is
    still shown)."""
    import warnings

    from mqformer.apis.inferencer import init_model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        init_model(TINY_CFG, checkpoint)
        warnings.warn('a later warning')
    messages = [str(w.message) for w in caught]
    assert not any('checkpoint is None' in m for m in messages), messages
    assert 'a later warning' in messages

"""The bad-input battery (docs/bad_inputs.md): each kind of mistake a user
makes first, driven through the entry point they call, with what they see:
a clear error naming the file/field, a logged skip with a count, or a
documented result - never a traceback from deep inside torch and never a
silently wrong answer. (Kinds tested elsewhere are listed in the docs.)"""
import json
import logging
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, TINY_CFG
from mqformer.testing import ShapesWorld, write_coco_instances

TEXTS = ['sky', 'red circle', 'blue square']


@pytest.fixture(scope='module')
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    from mqformer.apis import MQFormerInferencer
    return MQFormerInferencer(TINY_CFG, checkpoint, score_thr=0.0)


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    d = tmp_path_factory.mktemp('photos')
    img, _, _ = ShapesWorld(seed=4).sample()
    cv2.imwrite(str(d / 'ok.jpg'), img[..., ::-1])
    return d


def log_records():
    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    MMLogger.get_current_instance().addHandler(handler)
    return records, lambda: MMLogger.get_current_instance().removeHandler(
        handler)


# ------------------------------------------------------------- images
def test_zero_byte_image(inferencer, photo):
    (photo / 'zero.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match=r'zero.jpg: the file is empty'):
        inferencer(str(photo / 'zero.jpg'), TEXTS)


def test_truncated_jpeg(inferencer, photo):
    data = (photo / 'ok.jpg').read_bytes()
    (photo / 'cut.jpg').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r'cut.jpg: truncated JPEG'):
        inferencer(str(photo / 'cut.jpg'), TEXTS)


def test_cmyk_jpeg_and_16_bit_png_are_read(inferencer, photo):
    from PIL import Image
    rgb = cv2.imread(str(photo / 'ok.jpg'))[..., ::-1]
    Image.fromarray(rgb).convert('CMYK').save(photo / 'cmyk.jpg')
    cv2.imwrite(str(photo / 'deep.png'),
                rgb[..., ::-1].astype(np.uint16) * 257)
    for name in ('cmyk.jpg', 'deep.png'):
        res = inferencer(str(photo / name), TEXTS, task='instance')[0]
        assert (res['height'], res['width']) == rgb.shape[:2]
    from mqformer.apis import read_image
    deep = read_image(str(photo / 'deep.png'))
    assert deep.dtype == np.uint8 and np.abs(
        deep.astype(int) - rgb[..., ::-1]).max() <= 1  # scaled, not clipped


def test_exif_rotated_jpeg_is_predicted_upright(inferencer, photo):
    from PIL import Image
    stored = np.zeros((30, 60, 3), np.uint8)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # viewers rotate it 90 degrees: 60 high, 30 wide
    im.save(photo / 'exif.jpg', exif=exif.tobytes())
    res = inferencer(str(photo / 'exif.jpg'), TEXTS, task='semantic')[0]
    assert (res['height'], res['width']) == (60, 30)


def test_image_smaller_than_the_backbone_stride(inferencer, photo):
    cv2.imwrite(str(photo / 'tiny.png'), np.full((3, 5, 3), 90, np.uint8))
    res = inferencer(str(photo / 'tiny.png'), TEXTS, task='panoptic')[0]
    assert (res['height'], res['width']) == (3, 5)  # resized up and back


# -------------------------------------------------------------- texts
@pytest.mark.parametrize('texts,error,match', [
    ('red circle', TypeError, 'list of strings'),
    (['sky', ''], ValueError, r'texts\[1\] is empty'),
    (['sky', '   '], ValueError, r'texts\[1\] is empty'),
    (['sky', None], TypeError, r'texts\[1\] is NoneType'),
    ([], ValueError, 'at least one text'),
])
def test_bad_text_lists(inferencer, photo, texts, error, match):
    with pytest.raises(error, match=match):
        inferencer(str(photo / 'ok.jpg'), texts)


def test_non_ascii_emoji_and_a_large_vocabulary_work(inferencer, photo):
    texts = ['céu', '红色圆圈', '🟦 square'] + [f'class {i}' for i in range(1500)]
    res = inferencer(str(photo / 'ok.jpg'), texts, task='semantic')[0]
    assert res['texts'] == texts
    assert all(0 <= s['label'] < len(texts) for s in res['semantic'])


def test_text_longer_than_the_text_model_is_truncated_with_a_log(
        inferencer, photo):
    enc = inferencer.model.text_encoder
    before = enc.num_truncated
    records, done = log_records()
    try:
        long = 'the red circle ' + 'that is next to the square ' * 30
        inferencer(str(photo / 'ok.jpg'), ['sky', long], task='instance')
    finally:
        done()
    assert enc.num_truncated == before + 1
    if before == 0:
        assert any('truncated' in m for m in records)


# ---------------------------------------------------- tasks, weights
def test_unknown_task(inferencer, photo):
    with pytest.raises(ValueError, match="task must be one of"):
        inferencer(str(photo / 'ok.jpg'), TEXTS, task='depth')


def run_tool(*args, cwd=REPO):
    env = dict(os.environ, HF_HUB_OFFLINE='1')
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_unknown_task_in_the_infer_tool(photo, checkpoint):
    p = run_tool('tools/infer.py', str(photo / 'ok.jpg'), '--config',
                 TINY_CFG, '--weights', checkpoint, '--texts', 'sky',
                 '--task', 'depth')
    assert p.returncode == 2 and "invalid choice: 'depth'" in p.stderr


def other_model_checkpoint(path):
    """Mask2Former-style keys: a checkpoint of another model."""
    sd = {'backbone.conv1.weight': torch.zeros(64, 3, 7, 7),
          'panoptic_head.pixel_decoder.input_convs.0.conv.weight':
          torch.zeros(256, 2048, 1, 1)}
    torch.save(dict(state_dict=sd, meta={}), str(path))
    return str(path)


def test_weights_of_another_model(tmp_path):
    from mqformer.apis import MQFormerInferencer
    path = other_model_checkpoint(tmp_path / 'm2f.pth')
    with pytest.raises(ValueError, match=r'm2f.pth: these weights do not fit'
                       r'.*missing.*checkpoint of another model'):
        MQFormerInferencer(TINY_CFG, path)


def test_weights_with_missing_keys_and_other_shapes(tmp_path, checkpoint):
    from mqformer.apis import MQFormerInferencer
    sd = torch.load(checkpoint, weights_only=True)['state_dict']
    sd.pop('text_proj.bias')
    sd['bbox_head.cls_embed.weight'] = torch.zeros(3, 3)
    torch.save(dict(state_dict=sd, meta={}), str(tmp_path / 'bad.pth'))
    with pytest.raises(ValueError, match=r'1 of its \d+ weights are missing '
                       r'\(e.g. text_proj.bias\), 1 have another shape'):
        MQFormerInferencer(TINY_CFG, str(tmp_path / 'bad.pth'))


def test_test_tool_refuses_weights_that_do_not_fit(tmp_path, shapes_root):
    path = other_model_checkpoint(tmp_path / 'm2f.pth')
    p = run_tool('tools/test.py', TINY_CFG, path, '--work-dir',
                 str(tmp_path / 'wd'), '--cfg-options',
                 f'test_dataloader.dataset.data_root={shapes_root}/',
                 f'test_evaluator.ann_file={shapes_root}/annotations/'
                 'instances_val.json')
    assert p.returncode != 0
    assert 'm2f.pth: these weights do not fit the model' in p.stderr


# ------------------------------------------------------------- configs
def test_config_with_a_typo_in_a_key(tmp_path, shapes_root):
    p = run_tool('tools/train.py', TINY_CFG, '--work-dir',
                 str(tmp_path / 'wd'), '--cfg-options',
                 'model.bbox_head.num_pionts=100',
                 f'train_dataloader.dataset.data_root={shapes_root}/')
    assert p.returncode != 0
    assert "MQHead" in p.stderr and "num_pionts" in p.stderr


def test_dataset_path_that_does_not_exist(tmp_path):
    p = run_tool('tools/train.py', TINY_CFG, '--work-dir',
                 str(tmp_path / 'wd'), '--cfg-options',
                 'train_dataloader.dataset.data_root=/no/such/dir/')
    assert p.returncode != 0
    assert 'annotation file not found' in p.stderr or \
        'No such file' in p.stderr
    assert '/no/such/dir/annotations/instances_train.json' in p.stderr


def test_unwritable_work_dir(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    p = run_tool('tools/train.py', TINY_CFG, '--work-dir',
                 str(blocker / 'wd'))
    assert p.returncode != 0
    assert f'work dir {blocker}/wd is not writable' in p.stderr
    assert 'Traceback' not in p.stderr


# ------------------------------------------------------------ datasets
@pytest.fixture()
def coco(tmp_path):
    write_coco_instances(str(tmp_path), ShapesWorld(seed=3), 6, 'val')
    return tmp_path


def coco_dataset(root):
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    return DATASETS.build(dict(
        type='CocoTextDataset', data_root=str(root),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'), return_classes=True,
        metainfo=dict(classes=ShapesWorld().thing_classes),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True,
                       with_mask=True)]))


def ann_path(root):
    return osp.join(root, 'annotations', 'instances_val.json')


def edit(root, fn):
    data = json.load(open(ann_path(root)))
    fn(data)
    json.dump(data, open(ann_path(root), 'w'))
    return data


@pytest.mark.parametrize('content,match', [
    ('', 'instances_val.json: the annotation file is empty'),
    ('[1, 2]', 'instances_val.json: not a COCO annotation file'),
    ('{"images": []}', 'instances_val.json: not a COCO annotation file'),
    ('{"images": [', 'instances_val.json: not valid json'),
])
def test_annotation_files_that_are_not_coco(coco, content, match):
    open(ann_path(coco), 'w').write(content)
    with pytest.raises(ValueError, match=match):
        coco_dataset(coco)


def test_rle_of_the_wrong_size(coco):
    edit(coco, lambda d: d['annotations'][0]['segmentation'].update(
        size=[7, 9]))
    with pytest.raises(ValueError, match=r'instances_val.json: annotation 1 '
                       r'of image val_00000.jpg has an RLE mask of size '
                       r'\[7, 9\]'):
        coco_dataset(coco)


def test_short_polygons_nan_and_inverted_boxes_are_logged_skips(coco):
    def bad(d):
        a = d['annotations']
        a[0]['segmentation'] = [[1, 1, 5, 5]]  # 2 points
        a[1]['bbox'] = [float('nan'), 2, 10, 10]
        a[2]['bbox'] = [20, 20, -5, 10]  # inverted
        a[3]['segmentation'] = [[1, 1, 9, 1, 9, 9], [3, 3]]  # one short
    data = edit(coco, bad)
    records, done = log_records()
    try:
        ds = coco_dataset(coco)
    finally:
        done()
    log = '\n'.join(records)
    assert 'polygon with < 3 points: 2 (ids [1, 4])' in log
    assert 'non-finite box: 1 (ids [2])' in log
    assert 'zero area or inverted box: 1 (ids [3])' in log
    n = sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds)))
    assert n == len(data['annotations']) - 3  # id 4 keeps its good polygon
    for i in range(len(ds)):  # every kept mask decodes at the image size
        out = ds[i]
        assert out['gt_masks'].masks.shape[1:] == out['img'].shape[:2]

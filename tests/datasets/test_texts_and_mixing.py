"""Negative texts, a four-format training mix in one dataloader, bad input."""
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from mqformer.testing import (ShapesWorld, write_coco_instances,
                              write_coco_panoptic, write_foreground,
                              write_odvg, write_refcoco)


def class_texts(labels, names, **kw):
    from mqformer.datasets import ClassNamesToTexts
    t = ClassNamesToTexts(**kw)
    return t(dict(text=names, gt_bboxes_labels=np.array(labels),
                  img_path='x.jpg'))


@pytest.mark.parametrize('num_neg', [0, 2, 5, -1])
def test_negatives_never_drop_a_positive_never_duplicate(num_neg):
    names = [f'class {i}' for i in range(8)]
    for seed in range(20):
        np.random.seed(seed)
        out = class_texts([3, 5, 3], names, num_negatives=num_neg)
        texts = out['texts']
        assert len(texts) == len(set(texts))
        assert {'class 3', 'class 5'} <= set(texts)
        n_neg = len(texts) - 2
        assert n_neg == (6 if num_neg == -1 else min(num_neg, 6))
        assert [texts[l] for l in out['gt_bboxes_labels']] == \
            ['class 3', 'class 5', 'class 3']


def test_negatives_are_shuffled_and_sampled():
    names = [f'class {i}' for i in range(30)]
    orders, sets = set(), set()
    for seed in range(10):
        np.random.seed(seed)
        out = class_texts([0], names, num_negatives=4)
        orders.add(tuple(out['texts']).index('class 0'))
        sets.add(frozenset(out['texts']))
    assert len(orders) > 1 and len(sets) > 1


def test_referring_negatives_are_the_other_phrases():
    from mqformer.datasets import PhrasesToTexts
    from mmdet.structures.mask import BitmapMasks
    masks = np.zeros((3, 8, 8), np.uint8)
    masks[0, :2] = masks[1, 4:] = masks[2, :, :2] = 1
    out = PhrasesToTexts()(dict(text=['the red circle', 'the sky',
                                      'the red circle'],
                                gt_masks=BitmapMasks(masks, 8, 8)))
    assert sorted(out['texts']) == ['the red circle', 'the sky']
    assert [out['texts'][l] for l in out['gt_bboxes_labels']] == \
        ['the red circle', 'the sky', 'the red circle']


def test_referring_instances_gone_after_the_resize_are_skipped_logged():
    """A target with no mask pixel left (a few-pixel object downscaled) is
    no instance and its phrase no negative, said once in the log and
    counted per sample; with none left the sample is replaced (None);
    evaluation keeps every expression in order, an empty one boxed at 0."""
    import logging
    from mmengine.logging import MMLogger
    from mqformer.datasets import PhrasesToTexts
    from mqformer.datasets.transforms import segments
    from mmdet.structures.mask import BitmapMasks
    masks = np.zeros((3, 8, 8), np.uint8)
    masks[0, :2] = masks[2, :, :2] = 1  # masks[1]: gone

    def sample(m):
        return dict(text=['the red circle', 'the tiny dot', 'the sky'],
                    gt_masks=BitmapMasks(m, 8, 8), img_path='r.jpg')
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    segments._WARNED.discard('vanished')
    try:
        out = PhrasesToTexts()(sample(masks))
        PhrasesToTexts()(sample(masks))
    finally:
        logger.removeHandler(handler)
    assert sorted(out['texts']) == ['the red circle', 'the sky']
    assert [out['texts'][l] for l in out['gt_bboxes_labels']] == \
        ['the red circle', 'the sky']
    assert len(out['gt_masks']) == len(out['gt_bboxes']) == 2
    assert out['num_vanished'] == 1
    said = [r for r in records if 'r.jpg: 1 of 3 instances' in r]
    assert len(said) == 1
    assert PhrasesToTexts()(sample(np.zeros_like(masks))) is None
    ev = PhrasesToTexts(unique=False)(sample(masks))
    assert ev['texts'] == ['the red circle', 'the tiny dot', 'the sky']
    assert ev['gt_bboxes'].tensor[1].tolist() == [0, 0, 0, 0]
    assert ev['gt_bboxes'].tensor[0].tolist() == [0, 0, 8, 2]


def test_label_out_of_range_is_an_error_naming_the_file():
    with pytest.raises(ValueError, match='x.jpg.*out of range'):
        class_texts([9], ['a', 'b'])


@pytest.fixture(scope='module')
def mix_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mix'))
    w = lambda s: ShapesWorld(seed=s, gray_prob=0.3)  # noqa: E731
    write_coco_panoptic(osp.join(root, 'pan'), w(1), 4, 'train')
    write_refcoco(osp.join(root, 'ref'), w(2), 4, splits=('train', ))
    write_foreground(osp.join(root, 'fg'), w(3), 4)
    write_odvg(osp.join(root, 'vg'), w(4), 4)
    return root


def mix_datasets(root):
    w = ShapesWorld()
    tail = [dict(type='RandomFlip', prob=0.5),
            dict(type='Resize', scale=(96, 96), keep_ratio=True),
            dict(type='PackMQInputs')]
    return [
        dict(type='CocoPanopticDataset', data_root=f'{root}/pan',
             ann_file='annotations/panoptic_train.json',
             data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
             return_classes=True,
             metainfo=dict(classes=w.thing_classes + w.stuff_classes,
                           thing_classes=w.thing_classes,
                           stuff_classes=w.stuff_classes),
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadPanopticSegments'),
                       dict(type='ClassNamesToTexts', num_negatives=5,
                            task='panoptic')] + tail),
        dict(type='RefCocoDataset', data_root=f'{root}/ref',
             ann_file='refcoco/instances.json',
             split_file='refcoco/refs(unc).p',
             data_prefix=dict(img_path='train2014/'), split='train',
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadAnnotations', with_mask=True,
                            with_bbox=False, with_label=False),
                       dict(type='PhrasesToTexts')] + tail),
        dict(type='ForegroundDataset', data_root=f'{root}/fg',
             data_prefix=dict(img='images', seg='masks'),
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadForegroundMask'),
                       dict(type='ClassNamesToTexts', task='foreground')] +
             tail),
        dict(type='ODVGDataset', data_root=f'{root}/vg',
             ann_file='vg_odvg.jsonl', data_prefix=dict(img='images/'),
             return_classes=True,
             pipeline=[dict(type='LoadImageFromFile'),
                       dict(type='LoadAnnotations', with_bbox=True),
                       dict(type='PhrasesToTexts', task='grounding')] + tail),
    ]


def test_concat_of_four_formats_feeds_the_model(mix_root):
    """Panoptic + referring + foreground + grounding (boxes only) in one
    ConcatDataset and dataloader; mixed-task batches train the model."""
    import mqformer  # noqa: F401
    from mmengine.runner import Runner
    from mmdet.utils import register_all_modules
    from conftest import tiny_cfg
    from mmdet.registry import MODELS
    register_all_modules()
    loader = Runner.build_dataloader(dict(
        batch_size=4, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
        dataset=dict(type='ConcatDataset', datasets=mix_datasets(mix_root))))
    cfg = tiny_cfg()
    model = MODELS.build(cfg.model)
    model.init_weights()
    tasks = set()
    for data in loader:
        data = model.data_preprocessor(data, True)
        tasks |= {s.task for s in data['data_samples']}
        losses = model.loss(data['inputs'], data['data_samples'])
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(loss)
        loss.backward()
    assert tasks == {'panoptic', 'referring', 'foreground', 'grounding'}


def test_multi_dataset_sampler_with_ratios(mix_root):
    """mmdet's MultiDataAspectRatioBatchSampler draws per-dataset batches in
    the given ratio."""
    import mqformer  # noqa: F401
    from mmengine.runner import Runner
    from mmdet.utils import register_all_modules
    register_all_modules()
    pan, _, _, vg = mix_datasets(mix_root)
    datasets = [pan, vg]  # the aspect-ratio sampler reads width/height
    loader = Runner.build_dataloader(dict(
        batch_size=2, num_workers=0,
        sampler=dict(type='MultiDataSampler', dataset_ratio=[3, 1], seed=0),
        batch_sampler=dict(type='MultiDataAspectRatioBatchSampler',
                           batch_size=[2, 2], num_datasets=2),
        dataset=dict(type='ConcatDataset', datasets=datasets)))
    counts = {'panoptic': 0, 'grounding': 0}
    for i, data in enumerate(loader):
        for s in data['data_samples']:
            counts[s.task] += 1
        if i >= 11:
            break
    assert counts['panoptic'] > 1.8 * counts['grounding'] > 0


# ------------------------------------------------------------------ bad input
@pytest.fixture()
def coco_copy(tmp_path):
    write_coco_instances(str(tmp_path), ShapesWorld(seed=5), 3, 'val')
    return tmp_path


def coco_ds(root, **kw):
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = dict(type='CocoDataset', data_root=str(root),
               ann_file='annotations/instances_val.json',
               data_prefix=dict(img='val/'), return_classes=True,
               metainfo=dict(classes=ShapesWorld().thing_classes),
               pipeline=[dict(type='LoadImageFromFile'),
                         dict(type='LoadAnnotations', with_bbox=True,
                              with_mask=True),
                         dict(type='ClassNamesToTexts')], test_mode=True)
    cfg.update(kw)
    return DATASETS.build(cfg)


def test_missing_annotation_file_names_it(coco_copy):
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        coco_ds(coco_copy, ann_file='annotations/nowhere.json')


def test_missing_image_names_it(coco_copy):
    os.remove(osp.join(coco_copy, 'val', 'val_00001.jpg'))
    ds = coco_ds(coco_copy)
    with pytest.raises(FileNotFoundError, match='val_00001.jpg'):
        ds.prepare_data(1)


def test_corrupt_image_names_it(coco_copy):
    with open(osp.join(coco_copy, 'val', 'val_00000.jpg'), 'wb') as f:
        f.write(b'not a jpeg')
    ds = coco_ds(coco_copy)
    with pytest.raises(Exception, match='val_00000.jpg'):
        ds.prepare_data(0)


def test_foreground_mask_size_mismatch_and_missing_mask(tmp_path):
    import cv2
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    write_foreground(str(tmp_path), ShapesWorld(seed=1), 2)
    cv2.imwrite(osp.join(tmp_path, 'masks', 'fg_00000.png'),
                np.zeros((5, 5), np.uint8))
    ds = DATASETS.build(dict(
        type='ForegroundDataset', data_root=str(tmp_path),
        data_prefix=dict(img='images', seg='masks'), test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadForegroundMask')]))
    with pytest.raises(ValueError, match='fg_00000.png.*mask is'):
        ds.prepare_data(0)
    os.remove(osp.join(tmp_path, 'masks', 'fg_00001.png'))
    with pytest.raises(FileNotFoundError, match='fg_00001'):
        DATASETS.build(dict(type='ForegroundDataset', data_root=str(tmp_path),
                            data_prefix=dict(img='images', seg='masks')))


def test_panoptic_segment_without_pixels_names_file_and_segment(tmp_path):
    write_coco_panoptic(str(tmp_path), ShapesWorld(seed=2), 2, 'val')
    ann = osp.join(tmp_path, 'annotations', 'panoptic_val.json')
    data = json.load(open(ann))
    data['annotations'][0]['segments_info'][0]['id'] = 424242
    json.dump(data, open(ann, 'w'))
    from mqformer.datasets import LoadPanopticSegments
    from mmdet.datasets import CocoPanopticDataset
    w = ShapesWorld()
    ds = CocoPanopticDataset(
        data_root=str(tmp_path), ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        metainfo=dict(classes=w.thing_classes + w.stuff_classes,
                      thing_classes=w.thing_classes,
                      stuff_classes=w.stuff_classes),
        test_mode=True, pipeline=[])
    info = ds.get_data_info(0)
    info['ori_shape'] = (info['height'], info['width'])
    with pytest.raises(ValueError, match='val_00000.png.*424242'):
        LoadPanopticSegments()(info)


def test_semantic_label_out_of_range_names_file():
    from mqformer.datasets import SemanticToInstances
    seg = np.zeros((4, 4), np.uint8)
    seg[0, 0] = 7
    with pytest.raises(ValueError, match='a.png.*7'):
        SemanticToInstances()(dict(gt_seg_map=seg, text=['a', 'b'],
                                   seg_map_path='a.png'))

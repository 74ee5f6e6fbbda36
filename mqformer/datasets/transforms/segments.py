"""Semantic maps, foreground masks and phrases -> (text, box, mask) instances."""
import logging
from typing import Optional

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.logging import print_log

from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks
from .loading import masks_to_boxes

_WARNED = set()


def set_instances(results: dict, masks: np.ndarray, labels) -> None:
    """Write gt_masks / gt_bboxes (from masks) / labels / ignore flags."""
    h, w = masks.shape[-2:]
    results['gt_masks'] = BitmapMasks(masks.astype(np.uint8), h, w)
    results['gt_bboxes'] = HorizontalBoxes(
        masks_to_boxes(masks.astype(bool)), dtype=torch.float32)
    results['gt_bboxes_labels'] = np.asarray(labels, np.int64)
    results['gt_ignore_flags'] = np.zeros(len(labels), bool)


@TRANSFORMS.register_module()
class SemanticToInstances(BaseTransform):
    """A semantic map (``gt_seg_map``, from mmdet's ``LoadAnnotations(
    with_seg=True)``) becomes one instance per present class: its mask, the
    box around it and the class index (``text`` keeps the class names for
    :class:`ClassNamesToTexts`). ``gt_seg_map`` stays for mIoU evaluation.

    Args:
        ignore_index (int): label of unlabeled pixels. Defaults to 255.
        num_classes (int, optional): labels >= it are an error naming the
            file (default: ``len(results['text'])``).
    """

    def __init__(self, ignore_index: int = 255,
                 num_classes: Optional[int] = None) -> None:
        self.ignore_index = ignore_index
        self.num_classes = num_classes

    def transform(self, results: dict) -> dict:
        seg = results['gt_seg_map']
        num_classes = self.num_classes or len(results.get('text', ()))
        present = [int(c) for c in np.unique(seg) if c != self.ignore_index]
        bad = [c for c in present if num_classes and c >= num_classes]
        if bad:
            raise ValueError(
                f'{results.get("seg_map_path")}: labels {bad} are not in the '
                f'{num_classes} classes (is reduce_zero_label set right?)')
        masks = np.stack([seg == c for c in present]) if present else \
            np.zeros((0, *seg.shape), bool)
        set_instances(results, masks, present)
        return results


@TRANSFORMS.register_module()
class LoadForegroundMask(BaseTransform):
    """Binary foreground PNG (``seg_map_path``) -> one instance with the
    dataset's text (``results['text'][0]``, e.g. ``'foreground'``); an empty
    mask gives no instance (the text is then a negative).

    Args:
        threshold (int): pixels > threshold are foreground. Defaults to 127.
    """

    def __init__(self, threshold: int = 127, backend_args=None) -> None:
        self.threshold = threshold
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results['seg_map_path']
        mask = mmcv.imfrombytes(get(path, backend_args=self.backend_args),
                                flag='grayscale')
        if mask is None:
            raise ValueError(f'{path}: cannot decode the foreground mask')
        h, w = results['ori_shape'] if 'ori_shape' in results else \
            results['img'].shape[:2]
        if mask.shape[:2] != (h, w):
            raise ValueError(f'{path}: mask is {mask.shape[:2]} but the image '
                             f'{results.get("img_path")} is {(h, w)}')
        fg = mask > self.threshold
        masks = fg[None] if fg.any() else np.zeros((0, h, w), bool)
        set_instances(results, masks, [0] * len(masks))
        return results


@TRANSFORMS.register_module()
class PhrasesToTexts(BaseTransform):
    """Free-form phrases -> ``texts`` (referring and grounding data).

    Phrase of instance i: ``results['phrases'][label_i]['phrase']`` (mmdet's
    ``ODVGDataset`` in VG mode) or ``results['text'][i]`` (mmdet's
    ``RefCocoDataset``: one sentence per instance). Identical phrases become
    one text; the image's other phrases are each instance's negatives.
    Texts are not prompt-templated (``text_type='phrase'``).

    Args:
        task (str): ``'referring'`` or ``'grounding'``.
        shuffle (bool): shuffle the texts. Defaults to True.
        max_texts (int, optional): cap on texts per image; instances of the
            phrases left out are dropped (listed in ``dropped_phrases``).
        unique (bool): merge identical phrases into one text (training).
            ``False`` keeps one text per expression in order (evaluation:
            referring output i answers expression i).
    """

    def __init__(self, task: str = 'referring', shuffle: bool = True,
                 max_texts: Optional[int] = None, unique: bool = True) -> None:
        self.task = task
        self.shuffle = shuffle
        self.max_texts = max_texts
        self.unique = unique

    def instance_phrases(self, results: dict) -> list:
        n = len(results.get('gt_masks', results.get('gt_bboxes', [])))
        if 'phrases' in results:
            labels = results['gt_bboxes_labels']
            return [results['phrases'][int(l)]['phrase'] for l in labels]
        phrases = list(results['text'])
        if len(phrases) != n:
            raise ValueError(f'{results.get("img_path")}: {len(phrases)} '
                             f'phrases for {n} instances')
        return phrases

    def transform(self, results: dict) -> dict:
        phrases = [p.strip() for p in self.instance_phrases(results)]
        if not self.unique:  # evaluation: text i is expression i, in order
            results['texts'] = phrases
            results['gt_bboxes_labels'] = np.arange(len(phrases))
            return self._finish(results)
        keep = self.visible(results, len(phrases))
        if len(phrases) and not keep.any():
            return None  # nothing left to refer to: the dataset loads another
        # a phrase whose every instance vanished is no negative: left out
        texts = list(dict.fromkeys(p for p, k in zip(phrases, keep) if k))
        if self.shuffle:
            texts = [texts[i] for i in np.random.permutation(len(texts))]
        if self.max_texts is not None and len(texts) > self.max_texts:
            dropped = set(texts[self.max_texts:])
            texts = texts[:self.max_texts]
            keep &= np.array([p not in dropped for p in phrases], bool)
            results['dropped_phrases'] = sorted(dropped)
        index = {t: i for i, t in enumerate(texts)}
        labels = np.array([index[p] for p, k in zip(phrases, keep) if k],
                          np.int64)
        for key in ('gt_masks', 'gt_bboxes', 'gt_ignore_flags'):
            if key in results:
                results[key] = results[key][keep] if len(keep) else \
                    results[key]
        results['gt_bboxes_labels'] = labels
        results['texts'] = texts
        return self._finish(results)

    @staticmethod
    def visible(results: dict, n: int) -> np.ndarray:
        """(n, ) bool, False for an instance whose mask has no pixel left
        (a few-pixel object after a downscaling ``Resize``): skipped in
        training, counted in ``num_vanished``, logged once."""
        if 'gt_masks' not in results or not n:
            return np.ones(n, bool)
        visible = results['gt_masks'].masks.reshape(n, -1).any(1)
        results['num_vanished'] = int(n - visible.sum())
        if results['num_vanished'] and 'vanished' not in _WARNED:
            _WARNED.add('vanished')
            print_log(
                f'PhrasesToTexts: {results.get("img_path")}: '
                f'{results["num_vanished"]} of {n} instances have no mask '
                'pixel left after the resize; they and their phrases are '
                'skipped (an image with none left is replaced by another; '
                '"num_vanished" counts them per sample). Said once.',
                logger='current', level=logging.WARNING)
        return visible

    def _finish(self, results: dict) -> dict:
        if 'gt_bboxes' not in results and 'gt_masks' in results:
            m = results['gt_masks'].masks.astype(bool)
            results['gt_bboxes'] = HorizontalBoxes(masks_to_boxes(m),
                                                   dtype=torch.float32)
            results['gt_ignore_flags'] = np.zeros(len(m), bool)
        results['text_is_thing'] = [True] * len(results['texts'])
        results['text_type'] = 'phrase'
        results['task'] = self.task
        results['with_mask'] = 'gt_masks' in results
        return results

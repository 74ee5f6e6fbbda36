"""Unified text-label transforms: every sample becomes texts + gt_instances."""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS

MQ_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                'flip', 'flip_direction', 'texts', 'text_type', 'task',
                'with_mask', 'text_is_thing')


@TRANSFORMS.register_module()
class ClassNamesToTexts(BaseTransform):
    """Class ids -> texts for class-vocabulary datasets.

    Reads the dataset's class names from ``results['text']`` (mmdet datasets
    with ``return_classes=True``) and ``gt_bboxes_labels`` (class ids). Writes
    ``texts``: the present class names plus up to ``num_negatives`` absent ones,
    shuffled, each once; ``gt_bboxes_labels`` then index into ``texts``.
    ``text_is_thing`` keeps the dataset's thing/stuff flag of each text (from
    ``stuff_text``): panoptic evaluation reads it, and training does with
    ``MQHead(decouple_stuff_boxes=True)`` (no box loss for stuff).

    Args:
        num_negatives (int): absent class names added; -1 adds all of them.
        shuffle (bool): shuffle the text order (training). Without shuffling
            texts keep the dataset's class order, so with all negatives
            (evaluation) text i is class i. Defaults to True.
        task (str): the ``task`` tag. Defaults to ``'instance'``.
    """

    def __init__(self, num_negatives: int = -1, shuffle: bool = True,
                 task: str = 'instance') -> None:
        self.num_negatives = num_negatives
        self.shuffle = shuffle
        self.task = task

    def transform(self, results: dict) -> dict:
        if 'text' not in results:
            raise KeyError(
                f'{results.get("img_path")}: no class names in the sample; '
                'build the dataset with return_classes=True')
        names = list(results['text'])
        labels = np.asarray(results.get('gt_bboxes_labels', []), np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f'{results.get("img_path")}: label out of range '
                             f'0..{len(names) - 1}: {labels.tolist()}')
        present = list(dict.fromkeys(labels.tolist()))
        absent = [i for i in range(len(names)) if i not in set(present)]
        if self.num_negatives >= 0 and len(absent) > self.num_negatives:
            absent = np.random.choice(
                absent, self.num_negatives, replace=False).tolist()
        ids = present + absent
        if self.shuffle:
            ids = [ids[i] for i in np.random.permutation(len(ids))]
        else:  # dataset order: with all negatives, text i is class i
            ids = sorted(ids)
        to_text = {c: i for i, c in enumerate(ids)}
        results['texts'] = [names[c] for c in ids]
        # thing/stuff flags: panoptic evaluation, stuff without box loss
        stuff = set(results.get('stuff_text', ()))
        results['text_is_thing'] = [names[c] not in stuff for c in ids]
        results['gt_bboxes_labels'] = np.array(
            [to_text[c] for c in labels.tolist()], np.int64)
        results['text_type'] = 'class'
        results['task'] = self.task
        results.setdefault('with_mask', 'gt_masks' in results)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_negatives={self.num_negatives}, '
                f'shuffle={self.shuffle}, task={self.task!r})')


@TRANSFORMS.register_module()
class PackMQInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` that also keeps ``texts``, ``text_type``,
    ``task`` and ``with_mask`` in the data sample's metainfo."""

    def __init__(self, meta_keys: Sequence[str] = MQ_META_KEYS, **kwargs):
        super().__init__(meta_keys=meta_keys, **kwargs)

    def transform(self, results: dict) -> dict:
        # keys a sample may lack (e.g. at inference) are filled with defaults
        results.setdefault('text_type', 'class')
        results.setdefault('task', 'instance')
        results.setdefault('with_mask', 'gt_masks' in results)
        return super().transform(results)


@TRANSFORMS.register_module()
class SampleCaptions(BaseTransform):
    """Draw one of each instance's synthetic captions per iteration and use
    the captions as phrase texts (a referring-style sample).

    Place right after ``LoadAnnotations`` (instances still aligned with
    ``results['instances']``). Instances without captions keep their class
    name; crowd instances (``ignore_flag``) are dropped with their targets
    (``num_crowd_dropped`` counts them). The draw uses numpy's global RNG, which mmengine seeds per worker,
    so runs are reproducible with a fixed seed.

    Args:
        task (str): the task tag. Defaults to ``'referring'``.
    """

    def __init__(self, task: str = 'referring') -> None:
        self.task = task

    def transform(self, results: dict) -> dict:
        names = list(results.get('text', ()))
        instances = results.get('instances', [])
        labels = results.get('gt_bboxes_labels', [])
        if len(instances) != len(labels):
            raise ValueError(f'{results.get("img_path")}: SampleCaptions must '
                             'follow LoadAnnotations directly')
        # crowd boxes (mmdet keeps them, flagged in gt_ignore_flags) have no
        # caption and must not become texts: drop them with their targets
        keep = np.array([not i.get('ignore_flag', 0) for i in instances],
                        bool)
        if not keep.all():
            for key in ('gt_bboxes', 'gt_bboxes_labels', 'gt_masks',
                        'gt_ignore_flags'):
                if key in results:
                    results[key] = results[key][keep]
            results['num_crowd_dropped'] = int((~keep).sum())
        phrases = []
        for inst, label in zip([i for i, k in zip(instances, keep) if k],
                               results.get('gt_bboxes_labels', [])):
            caps = inst.get('captions') or [names[int(label)]]
            phrases.append(caps[np.random.randint(len(caps))])
        results['text'] = phrases
        results.pop('phrases', None)
        return results

"""Keep the referring evaluation images out of a training set."""
import pickle
from typing import Iterable, List, Sequence, Set, Union

from mmengine.dataset import BaseDataset
from mmengine.fileio import get
from mmengine.logging import MMLogger

from mmdet.registry import DATASETS

EVAL_SPLITS = ('val', 'testA', 'testB', 'test')


def refcoco_eval_image_ids(ref_files: Iterable[str],
                           splits: Sequence[str] = EVAL_SPLITS) -> Set[int]:
    """COCO image ids of the ``splits`` refs of RefCOCO/+/g ``refs(*).p``
    pickles (RefCOCO's image ids are COCO's, 2014 and 2017 alike)."""
    ids = set()
    for path in ref_files:
        refs = pickle.loads(get(path))
        ids.update(int(r['image_id']) for r in refs if r['split'] in splits)
    return ids


@DATASETS.register_module()
class ExcludeImages:
    """A dataset wrapper without the images the referring benchmarks
    evaluate on: the standard practice when COCO train images and RefCOCO/+/g
    are trained together (the val/test refs come from COCO train2014, which
    COCO train2017 contains). The number removed is logged.

    Args:
        dataset (dict | BaseDataset): the wrapped dataset; its data infos
            need ``img_id`` (COCO ids).
        ref_files (list[str]): RefCOCO/+/g ``refs(*).p`` pickles.
        splits (Sequence[str]): ref splits whose images are removed.
            Defaults to ``('val', 'testA', 'testB', 'test')``.
        image_ids (list[int]): more image ids to remove.
    """

    def __init__(self, dataset: Union[dict, BaseDataset],
                 ref_files: Sequence[str] = (),
                 splits: Sequence[str] = EVAL_SPLITS,
                 image_ids: Sequence[int] = (),
                 lazy_init: bool = False) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) \
            else dataset
        self.ref_files = list(ref_files)
        self.splits = tuple(splits)
        self.image_ids = [int(i) for i in image_ids]
        self.num_removed = None
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self.dataset.full_init()
        exclude = refcoco_eval_image_ids(self.ref_files, self.splits)
        exclude.update(self.image_ids)
        keep: List[int] = []
        for i in range(len(self.dataset)):
            info = self.dataset.get_data_info(i)
            if 'img_id' not in info:
                raise KeyError(f'ExcludeImages: {type(self.dataset).__name__} '
                               f'data info {i} has no img_id')
            if int(info['img_id']) not in exclude:
                keep.append(i)
        self.num_removed = len(self.dataset) - len(keep)
        MMLogger.get_current_instance().info(
            f'ExcludeImages: removed {self.num_removed} of {len(self.dataset)} '
            f'images of {type(self.dataset).__name__} ({len(exclude)} '
            f'excluded ids: {", ".join(self.splits)} refs of '
            f'{", ".join(self.ref_files) or "-"} and {len(self.image_ids)} '
            'listed)')
        self.dataset.get_subset_(keep)
        self._fully_initialized = True

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def __getitem__(self, idx: int) -> dict:
        return self.dataset[idx]

    def __len__(self) -> int:
        return len(self.dataset)

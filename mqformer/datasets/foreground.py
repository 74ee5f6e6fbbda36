"""Foreground / salient-object datasets: an image folder and a mask folder."""
import os
import os.path as osp
from typing import List, Sequence

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class ForegroundDataset(BaseDetDataset):
    """Images and binary masks with the same file stem (HRSOD, UHRSD, DUTS,
    DIS and alike)::

        data_root/<data_prefix.img>/xxx.jpg
        data_root/<data_prefix.seg>/xxx.png

    Every sample gets the one text ``text`` (default ``'foreground'``). An
    image without a mask is an error naming both paths.

    Args:
        text (str): the foreground text. Defaults to ``'foreground'``.
        img_suffixes (Sequence[str]): image file endings.
        seg_suffix (str): mask file ending. Defaults to ``'.png'``.
    """
    METAINFO = dict(classes=('foreground', ))

    def __init__(self, *args, text: str = 'foreground',
                 img_suffixes: Sequence[str] = ('.jpg', '.jpeg', '.png'),
                 seg_suffix: str = '.png', **kwargs) -> None:
        self.text = text
        self.img_suffixes = tuple(img_suffixes)
        self.seg_suffix = seg_suffix
        kwargs.setdefault('metainfo', dict(classes=(text, )))
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get('img', '')
        seg_dir = self.data_prefix.get('seg', '')
        for d, what in ((img_dir, 'image'), (seg_dir, 'mask')):
            if not osp.isdir(d):
                raise FileNotFoundError(f'{what} folder not found: {d}')
        data_list = []
        for i, name in enumerate(sorted(os.listdir(img_dir))):
            if not name.lower().endswith(self.img_suffixes):
                continue
            seg = osp.join(seg_dir, osp.splitext(name)[0] + self.seg_suffix)
            if not osp.exists(seg):
                raise FileNotFoundError(
                    f'no mask {seg} for image {osp.join(img_dir, name)}')
            data_list.append(dict(img_path=osp.join(img_dir, name), img_id=i,
                                  seg_map_path=seg, text=[self.text],
                                  instances=[]))
        if not data_list:
            raise ValueError(f'no images in {img_dir}')
        return data_list

    def filter_data(self) -> List[dict]:
        return self.data_list

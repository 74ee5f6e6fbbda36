"""COCO-format datasets with checked annotations and optional captions."""
from collections import defaultdict
from typing import List, Union

from mmengine.logging import print_log

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class CocoTextDataset(CocoDataset):
    """mmdet's ``CocoDataset`` (use with ``return_classes=True``) that never
    drops an annotation silently:

    - a ``category_id`` missing from the file's ``categories`` is an error
      naming the annotation file and annotation id;
    - zero-area annotations and boxes outside the image are skipped, and
      the skips are logged once per dataset with their annotation ids;
    - ``captions`` (synthetic object captions, a list of strings, optionally
      with ``caption_scores``) are kept on each instance for
      :class:`SampleCaptions`.

    Works for COCO instances, SeginW sets, Objects365 and any COCO-format
    detection set (boxes only: load with ``with_mask=False``).
    """

    def load_data_list(self) -> List[dict]:
        self._skipped = defaultdict(list)
        data_list = super().load_data_list()
        if self._skipped:
            summary = '; '.join(f'{why}: {len(ids)} (ids {ids[:10]})'
                                for why, ids in self._skipped.items())
            print_log(f'{self.ann_file}: skipped annotations - {summary}',
                      logger='current', level=30)
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> Union[dict, List[dict]]:
        img = raw_data_info['raw_img_info']
        known = self.coco.cats
        kept = []
        for ann in raw_data_info['raw_ann_info']:
            if ann['category_id'] not in known:
                raise ValueError(
                    f'{self.ann_file}: annotation {ann.get("id")} of image '
                    f'{img.get("file_name")} has category_id '
                    f'{ann["category_id"]}, which is not in its categories')
            x1, y1, w, h = ann['bbox']
            inside_w = min(x1 + w, img['width']) - max(x1, 0)
            inside_h = min(y1 + h, img['height']) - max(y1, 0)
            if ann.get('area', 1) <= 0 or w < 1 or h < 1:
                self._skipped['zero area'].append(ann.get('id'))
            elif inside_w <= 0 or inside_h <= 0:
                self._skipped['box outside the image'].append(ann.get('id'))
            else:
                kept.append(ann)
        raw_data_info['raw_ann_info'] = kept
        data_info = super().parse_data_info(raw_data_info)
        # the parent keeps annotations in order (minus ignored/unselected)
        selected = [a for a in kept if not a.get('ignore', False)
                    and a['category_id'] in self.cat_ids]
        for inst, ann in zip(data_info['instances'], selected):
            if 'captions' in ann:
                inst['captions'] = list(ann['captions'])
        return data_info

"""COCO-format datasets with checked annotations and optional captions."""
import json
import math
import os.path as osp
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
    - zero-area, inverted and non-finite boxes, boxes outside the image and
      polygons with fewer than 3 points are skipped, and the skips are
      logged once per dataset with their annotation ids;
    - an RLE mask whose size is not the image's, an empty file and a json
      that is not COCO are errors naming the file (and annotation);
    - ``captions`` (synthetic object captions, a list of strings, optionally
      with ``caption_scores``) are kept on each instance for
      :class:`SampleCaptions`.

    Works for COCO instances, SeginW sets, Objects365 and any COCO-format
    detection set (boxes only: load with ``with_mask=False``).
    """

    def load_data_list(self) -> List[dict]:
        self._skipped = defaultdict(list)
        path = self.ann_file
        if osp.isfile(path) and osp.getsize(path) == 0:
            raise ValueError(f'{path}: the annotation file is empty (0 '
                             'bytes)')
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid json ({e})') from None
        except (KeyError, TypeError, AttributeError, AssertionError) as e:
            raise ValueError(
                f'{path}: not a COCO annotation file ({type(e).__name__}: '
                f'{e}); COCO json is an object with "images", "annotations" '
                'and "categories" lists') from None
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
            seg = ann.get('segmentation')
            if not all(math.isfinite(float(v)) for v in ann['bbox']):
                self._skipped['non-finite box'].append(ann.get('id'))
            elif ann.get('area', 1) <= 0 or w < 1 or h < 1:
                self._skipped['zero area or inverted box'].append(
                    ann.get('id'))
            elif inside_w <= 0 or inside_h <= 0:
                self._skipped['box outside the image'].append(ann.get('id'))
            elif isinstance(seg, dict) and list(seg.get('size', [])) != [
                    img['height'], img['width']]:
                raise ValueError(
                    f'{self.ann_file}: annotation {ann.get("id")} of image '
                    f'{img.get("file_name")} has an RLE mask of size '
                    f'{seg.get("size")}, but the image is '
                    f'{[img["height"], img["width"]]} (height, width)')
            else:
                if isinstance(seg, list) and seg:
                    # mmdet replaces a mask without a valid polygon by an
                    # ignored dummy: drop short polygons here, and the
                    # annotation if none is left, with a logged count
                    polys = [p for p in seg if len(p) >= 6 and len(p) % 2 == 0]
                    if len(polys) < len(seg):
                        self._skipped['polygon with < 3 points'].append(
                            ann.get('id'))
                        if not polys:
                            continue
                        ann = dict(ann, segmentation=polys)
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

"""Loaders that turn dataset annotations into per-segment instances."""
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.fileio import get

from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks


def rgb2id(color: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG (H, W, 3) RGB -> segment ids (H, W)."""
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, 4) xyxy boxes (pixel edges); an empty mask
    gives zeros (as mmdet's ``mask2bbox``)."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs):
            boxes[i] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    return boxes


@TRANSFORMS.register_module()
class LoadPanopticSegments(BaseTransform):
    """Every panoptic segment, thing or stuff, becomes one instance.

    Reads the COCO panoptic PNG (``seg_map_path``) and ``segments_info`` of
    mmdet's ``CocoPanopticDataset`` and writes ``gt_masks`` (BitmapMasks),
    ``gt_bboxes`` (from the masks), ``gt_bboxes_labels`` (dataset class index,
    things then stuff), ``gt_ignore_flags`` and ``text`` (all class names, for
    :class:`ClassNamesToTexts`). Thing/stuff flags stay in ``segments_info``
    for panoptic evaluation only. Crowd segments (``iscrowd``, or as mmdet's
    ``CocoPanopticDataset`` gives them: a thing category with
    ``is_thing=False``) are skipped (``num_crowd_skipped`` counts them); a
    segment with no pixels in the PNG is an error naming the file and segment.

    Args:
        imdecode_backend (str): mmcv image decoding backend.
    """

    def __init__(self, imdecode_backend: str = 'cv2', backend_args=None):
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results.get('seg_map_path')
        if path is None:
            raise KeyError(f'{results.get("img_path")}: no seg_map_path; set '
                           'data_prefix.seg for the panoptic PNGs')
        png = mmcv.imfrombytes(get(path, backend_args=self.backend_args),
                               flag='color', channel_order='rgb',
                               backend=self.imdecode_backend)
        h, w = results.get('ori_shape', png.shape[:2])
        if png.shape[:2] != (h, w):
            raise ValueError(f'{path}: panoptic PNG is {png.shape[:2]} but the '
                             f'image is {(h, w)}')
        ids = rgb2id(png)
        masks, labels = [], []
        num_things = len(results.get('text', ()))
        for seg in results['segments_info']:
            # mmdet's CocoPanopticDataset has no iscrowd key: a crowd segment
            # arrives as a thing category with is_thing=False (its instance
            # has ignore_flag=1); it is an ignore region, not an instance
            crowd = seg.get('iscrowd', False) or (
                'is_thing' in seg and not seg['is_thing']
                and seg['category'] < num_things)
            if crowd:
                results['num_crowd_skipped'] = results.get(
                    'num_crowd_skipped', 0) + 1
                continue
            m = ids == seg['id']
            if not m.any():
                raise ValueError(f'{path}: segment id {seg["id"]} (category '
                                 f'{seg["category"]}) has no pixels')
            masks.append(m)
            labels.append(seg['category'])
        masks = np.stack(masks).astype(np.uint8) if masks else np.zeros(
            (0, h, w), np.uint8)
        results['gt_masks'] = BitmapMasks(masks, h, w)
        results['gt_bboxes'] = HorizontalBoxes(
            masks_to_boxes(masks.astype(bool)), dtype=torch.float32)
        results['gt_bboxes_labels'] = np.array(labels, np.int64)
        results['gt_ignore_flags'] = np.zeros(len(labels), bool)
        results['text'] = tuple(results.get('text', ())) + tuple(
            results.get('stuff_text', ()))
        return results

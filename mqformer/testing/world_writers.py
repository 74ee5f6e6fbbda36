"""The shapes world written in real dataset formats: COCO instances and
panoptic, ADE-style semantic PNGs, RefCOCO refs, ODVG grounding boxes and
foreground folders (what the mm dataset classes read from disk)."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from .shapes_world import Segment, ShapesWorld


def _save_image(path: str, img: np.ndarray, gray: bool) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if gray:
        cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    else:
        cv2.imwrite(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def _categories(world: ShapesWorld, with_stuff: bool) -> List[Dict]:
    cats = [dict(id=i + 1, name=n, isthing=1, supercategory='shape')
            for i, n in enumerate(world.thing_classes)]
    if with_stuff:
        cats += [dict(id=len(cats) + i + 1, name=n, isthing=0,
                      supercategory='stuff')
                 for i, n in enumerate(world.stuff_classes)]
    return cats


def write_coco_instances(root: str, world: ShapesWorld, num_images: int,
                         split: str = 'train', crowd_every: int = 0,
                         keep: Optional[Sequence[str]] = None,
                         first_id: int = 1) -> str:
    """COCO instances json (RLE masks, things only) + JPEG images.
    ``crowd_every=k`` marks every k-th thing annotation ``iscrowd=1``.
    ``keep``: only these thing names are categories and annotated; the
    other shapes stay in the images unlabelled (as the unannotated objects of
    an open-vocabulary set such as SeginW). ``first_id``: the first image
    id (ids of two splits can be kept disjoint).

    Layout: ``root/<split>/*.jpg`` and ``root/annotations/instances_<split>.json``.
    Returns the annotation file path.
    """
    cats = _categories(world, with_stuff=False)
    if keep is not None:
        cats = [dict(c, id=i + 1) for i, c in enumerate(
            c for c in cats if c['name'] in keep)]
    cat_id = {c['name']: c['id'] for c in cats}
    images, anns = [], []
    for i in range(num_images):
        img, segs, gray = world.sample()
        fname = f'{split}_{i:05d}.jpg'
        _save_image(osp.join(root, split, fname), img, gray)
        images.append(dict(id=i + first_id, file_name=fname,
                           height=img.shape[0], width=img.shape[1]))
        for s in segs:
            if not s.is_thing or s.name not in cat_id:
                continue
            rle = mask_utils.encode(np.asfortranarray(s.mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode()
            crowd = int(crowd_every > 0 and (len(anns) + 1) % crowd_every == 0)
            anns.append(dict(id=len(anns) + 1, image_id=i + first_id,
                             category_id=cat_id[s.name], bbox=s.bbox,
                             area=s.area, segmentation=rle, iscrowd=crowd))
    ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return ann_file


def write_coco_panoptic(root: str, world: ShapesWorld, num_images: int,
                        split: str = 'train', crowd_every: int = 0,
                        first_id: int = 1) -> str:
    """COCO panoptic format: JPEGs, RGB-encoded segment PNGs and the json.
    ``crowd_every=k`` marks every k-th thing segment ``iscrowd=1``;
    ``first_id``: the first image id.

    Layout: ``root/<split>/*.jpg``, ``root/annotations/panoptic_<split>/*.png``
    and ``root/annotations/panoptic_<split>.json``. Returns the json path.
    """
    cats = _categories(world, with_stuff=True)
    cat_id = {c['name']: c['id'] for c in cats}
    images, anns = [], []
    png_dir = osp.join(root, 'annotations', f'panoptic_{split}')
    os.makedirs(png_dir, exist_ok=True)
    num_things = 0
    for i in range(num_images):
        img, segs, gray = world.sample()
        fname = f'{split}_{i:05d}.jpg'
        _save_image(osp.join(root, split, fname), img, gray)
        h, w = img.shape[:2]
        images.append(dict(id=i + first_id, file_name=fname, height=h,
                           width=w))
        pan = np.zeros((h, w), np.int64)
        infos = []
        for k, s in enumerate(segs):
            seg_id = (k + 1) * 7 + 1000 * (i % 3)  # ids need not be contiguous
            pan[s.mask] = seg_id
            if s.is_thing:
                num_things += 1
            crowd = int(s.is_thing and crowd_every > 0
                        and num_things % crowd_every == 0)
            infos.append(dict(id=seg_id, category_id=cat_id[s.name],
                              bbox=s.bbox, area=s.area, iscrowd=crowd))
        rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536 % 256],
                       -1).astype(np.uint8)
        png = fname.replace('.jpg', '.png')
        cv2.imwrite(osp.join(png_dir, png), rgb[..., ::-1])
        anns.append(dict(image_id=i + first_id, file_name=png,
                         segments_info=infos))
    ann_file = osp.join(root, 'annotations', f'panoptic_{split}.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    return ann_file


def write_ade_semantic(root: str, world: ShapesWorld, num_images: int,
                       split: str = 'training') -> str:
    """ADE20K-style semantic segmentation: ``images/<split>/*.jpg`` and
    ``annotations/<split>/*.png`` with 0 = unlabeled and class i + 1 for
    class i of ``thing_classes + stuff_classes`` (use ``reduce_zero_label``).
    Returns the annotation folder."""
    classes = world.thing_classes + world.stuff_classes
    ann_dir = osp.join(root, 'annotations', split)
    os.makedirs(ann_dir, exist_ok=True)
    for i in range(num_images):
        img, segs, gray = world.sample()
        name = f'ade_{split}_{i:05d}'
        _save_image(osp.join(root, 'images', split, name + '.jpg'), img, gray)
        sem = np.zeros(img.shape[:2], np.uint8)
        for s in segs:
            sem[s.mask] = classes.index(s.name) + 1
        cv2.imwrite(osp.join(ann_dir, name + '.png'), sem)
    return ann_dir


def _phrase(s: Segment, segs: List[Segment]) -> str:
    """'the red circle' plus a spatial relation to another thing if any."""
    ys, xs = np.nonzero(s.mask)
    others = [o for o in segs if o.is_thing and o is not s]
    if not others:
        return f'the {s.name}'
    o = others[0]
    oys, oxs = np.nonzero(o.mask)
    rel = 'left of' if xs.mean() < oxs.mean() else 'right of'
    return f'the {s.name} {rel} the {o.name}'


def write_refcoco(root: str, world: ShapesWorld, num_images: int,
                  splits: Sequence[str] = ('train', 'val', 'testA')) -> Tuple[str, str]:
    """RefCOCO format: ``refcoco/instances.json`` (COCO, RLE masks),
    ``refcoco/refs(unc).p`` (pickled refs with ``sentences``, ``split``) and
    images in ``train2014/``. Every thing gets one referring expression; the
    images are split round-robin over ``splits``. Returns (json, pickle)."""
    import pickle
    cats = _categories(world, with_stuff=False)
    cat_id = {c['name']: c['id'] for c in cats}
    images, anns, refs = [], [], []
    for i in range(num_images):
        img, segs, gray = world.sample()
        fname = f'COCO_train2014_{i:012d}.jpg'
        _save_image(osp.join(root, 'train2014', fname), img, gray)
        images.append(dict(id=i + 1, file_name=fname, height=img.shape[0],
                           width=img.shape[1]))
        split = splits[i % len(splits)]
        for s in segs:
            if not s.is_thing:
                continue
            rle = mask_utils.encode(np.asfortranarray(s.mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode()
            ann_id = len(anns) + 1
            anns.append(dict(id=ann_id, image_id=i + 1,
                             category_id=cat_id[s.name], bbox=s.bbox,
                             area=s.area, segmentation=rle, iscrowd=0))
            sent = _phrase(s, segs)
            refs.append(dict(ref_id=len(refs), ann_id=ann_id, image_id=i + 1,
                             split=split, category_id=cat_id[s.name],
                             sentences=[dict(raw=sent, sent=sent,
                                             tokens=sent.split())],
                             file_name=fname))
    ref_dir = osp.join(root, 'refcoco')
    os.makedirs(ref_dir, exist_ok=True)
    ann_file = osp.join(ref_dir, 'instances.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)
    ref_file = osp.join(ref_dir, 'refs(unc).p')
    with open(ref_file, 'wb') as f:
        pickle.dump(refs, f)
    return ann_file, ref_file


def write_odvg(root: str, world: ShapesWorld, num_images: int) -> str:
    """ODVG grounding jsonl (Visual Genome region descriptions style): one
    line per image with ``grounding.regions`` (xyxy box + phrase); images in
    ``images/``. Returns the jsonl path."""
    lines = []
    for i in range(num_images):
        img, segs, gray = world.sample()
        fname = f'vg_{i:05d}.jpg'
        _save_image(osp.join(root, 'images', fname), img, gray)
        regions, caption = [], []
        for s in segs:
            x, y, w, h = s.bbox
            phrase = _phrase(s, segs) if s.is_thing else f'the {s.name}'
            start = len('. '.join(caption)) + (2 if caption else 0)
            caption.append(phrase)
            regions.append(dict(bbox=[x, y, x + w, y + h], phrase=phrase,
                                tokens_positive=[[start, start + len(phrase)]]))
        lines.append(dict(filename=fname, height=img.shape[0],
                          width=img.shape[1],
                          grounding=dict(caption='. '.join(caption),
                                         regions=regions)))
    path = osp.join(root, 'vg_odvg.jsonl')
    with open(path, 'w') as f:
        f.write('\n'.join(json.dumps(l) for l in lines) + '\n')
    return path


def write_foreground(root: str, world: ShapesWorld, num_images: int) -> str:
    """Foreground folders: ``images/*.jpg`` and ``masks/*.png`` (255 = thing
    pixels, the salient objects). Returns the root."""
    for i in range(num_images):
        img, segs, gray = world.sample()
        name = f'fg_{i:05d}'
        _save_image(osp.join(root, 'images', name + '.jpg'), img, gray)
        fg = np.zeros(img.shape[:2], np.uint8)
        for s in segs:
            if s.is_thing:
                fg[s.mask] = 255
        os.makedirs(osp.join(root, 'masks'), exist_ok=True)
        cv2.imwrite(osp.join(root, 'masks', name + '.png'), fg)
    return root

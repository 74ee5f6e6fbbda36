"""A procedurally drawn "shapes world" written in real dataset formats.

Used by the tests, the demo and ``tools/dataset_converters/make_shapes_world.py``.
Things are coloured shapes (instances); stuff are textured regions (sky, grass,
water, road) that tile the background. Images can be non-square and grayscale.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

COLORS = dict(
    red=(220, 40, 40),
    green=(40, 180, 60),
    blue=(40, 70, 220),
    yellow=(230, 210, 40),
    purple=(150, 60, 190),
    orange=(240, 140, 30))
SHAPES = ('circle', 'square', 'triangle')
STUFF = dict(
    sky=((135, 190, 235), 'smooth'),
    grass=((70, 140, 50), 'noise'),
    water=((40, 90, 160), 'waves'),
    road=((110, 110, 110), 'stripes'))
# the crowded world's extra vocabulary (8 colours x 6 shapes = 48 thing
# names, 10 stuff names); the default world draws none of it
CROWDED_COLORS = dict(
    COLORS,
    pink=(245, 130, 190),
    cyan=(40, 200, 210),
    brown=(130, 80, 40),
    black=(25, 25, 25))
CROWDED_SHAPES = SHAPES + ('diamond', 'hexagon', 'cross')
CROWDED_STUFF = dict(
    STUFF,
    sand=((210, 190, 130), 'noise'),
    snow=((235, 235, 240), 'smooth'),
    wall=((170, 90, 70), 'bricks'),
    floor=((150, 120, 80), 'checker'),
    dirt=((110, 80, 50), 'noise'),
    forest=((30, 90, 40), 'waves'))


@dataclass
class Segment:
    name: str
    is_thing: bool
    mask: np.ndarray  # (H, W) bool
    color: str = ''
    shape: str = ''

    @property
    def bbox(self) -> List[float]:
        """xywh of the mask (COCO convention)."""
        ys, xs = np.nonzero(self.mask)
        x0, y0 = float(xs.min()), float(ys.min())
        return [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0]

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class ShapesWorld:
    """Random images with stuff regions and shape instances.

    Args:
        colors / shapes / stuff: the vocabulary; thing classes are
            ``'<color> <shape>'``.
        things: the ``'<color> <shape>'`` names drawn and written (default:
            every colour x shape); e.g. leave combinations out of a training
            world and evaluate on them as never-seen class names.
        size_range: (min, max) of image sides; sides are drawn independently,
            so most images are non-square.
        min_objects / max_objects: shape instances per image.
        object_size: None (the default world's sizes) or (min, max) shape
            radius in pixels, drawn log-uniform and capped at a fifth of the
            shorter side: many small objects and a few large ones.
        max_stuff: stuff regions per image (1..max_stuff).
        stuff_layout: ``'bands'`` (horizontal bands) or ``'irregular'``
            (a Voronoi partition with wavy borders; a stuff name may own
            several cells).
        gray_prob: probability that an image is written grayscale.
        seed: the RNG seed; the same seed gives the same world.
    """
    colors: Sequence[str] = tuple(COLORS)
    shapes: Sequence[str] = SHAPES
    stuff: Sequence[str] = tuple(STUFF)
    things: Optional[Sequence[str]] = None
    size_range: Tuple[int, int] = (96, 160)
    max_objects: int = 4
    min_objects: int = 1
    object_size: Optional[Tuple[int, int]] = None
    max_stuff: int = 3
    stuff_layout: str = 'bands'
    gray_prob: float = 0.0
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self.rng = np.random.default_rng(self.seed)
        if self.things is not None:
            bad = [t for t in self.things if len(t.split(' ')) != 2
                   or t.split(' ')[0] not in CROWDED_COLORS
                   or t.split(' ')[1] not in CROWDED_SHAPES]
            if bad or not self.things:
                raise ValueError(f'ShapesWorld: things must be non-empty '
                                 f"'<color> <shape>' names, got {bad}")
        if self.stuff_layout not in ('bands', 'irregular'):
            raise ValueError("ShapesWorld: stuff_layout must be 'bands' or "
                             f"'irregular', got {self.stuff_layout!r}")

    @property
    def thing_classes(self) -> List[str]:
        if self.things is not None:
            return list(self.things)
        return [f'{c} {s}' for c in self.colors for s in self.shapes]

    @property
    def stuff_classes(self) -> List[str]:
        return list(self.stuff)

    def _texture(self, name: str, h: int, w: int) -> np.ndarray:
        base, kind = CROWDED_STUFF[name]
        img = np.empty((h, w, 3), np.float32)
        img[:] = base
        yy, xx = np.mgrid[0:h, 0:w]
        if kind == 'noise':
            img += self.rng.normal(0, 18, (h, w, 1))
        elif kind == 'waves':
            img += 20 * np.sin(yy / 3.0 + np.sin(xx / 7.0))[..., None]
        elif kind == 'stripes':
            img += 35 * ((xx // 6) % 2)[..., None]
        elif kind == 'bricks':
            img -= 45 * (((yy % 8) == 0) |
                         (((xx + 8 * (yy // 8 % 2)) % 16) == 0))[..., None]
        elif kind == 'checker':
            img += 30 * ((xx // 10 + yy // 10) % 2)[..., None]
        else:
            img += (yy / max(h, 1) * 30)[..., None]
        return img

    def _shape_mask(self, shape: str, h: int, w: int) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        if self.object_size is None:
            s = int(self.rng.integers(max(8, min(h, w) // 8),
                                      max(12, min(h, w) // 3)))
        else:
            lo, hi = self.object_size
            hi = max(lo, min(hi, min(h, w) // 5))
            s = int(round(np.exp(self.rng.uniform(np.log(lo),
                                                  np.log(hi + 1)))))
        cx = int(self.rng.integers(s, max(s + 1, w - s)))
        cy = int(self.rng.integers(s, max(s + 1, h - s)))
        if shape == 'circle':
            cv2.circle(m, (cx, cy), s, 1, -1)
        elif shape == 'square':
            cv2.rectangle(m, (cx - s, cy - s), (cx + s, cy + s), 1, -1)
        elif shape == 'triangle':
            pts = np.array([[cx, cy - s], [cx - s, cy + s], [cx + s, cy + s]])
            cv2.fillPoly(m, [pts.astype(np.int32)], 1)
        elif shape == 'diamond':
            pts = np.array([[cx, cy - s], [cx + s, cy], [cx, cy + s],
                            [cx - s, cy]])
            cv2.fillPoly(m, [pts.astype(np.int32)], 1)
        elif shape == 'hexagon':
            a = np.arange(6) * np.pi / 3
            pts = np.stack([cx + s * np.cos(a), cy + s * np.sin(a)], 1)
            cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
        else:  # cross
            t = max(1, s // 3)
            cv2.rectangle(m, (cx - s, cy - t), (cx + s, cy + t), 1, -1)
            cv2.rectangle(m, (cx - t, cy - s), (cx + t, cy + s), 1, -1)
        return m.astype(bool)

    def _stuff_regions(self, h: int, w: int) -> List[Tuple[str, np.ndarray]]:
        """The stuff names and their masks (H, W) bool, tiling the image."""
        n_stuff = int(self.rng.integers(1, min(self.max_stuff,
                                               len(self.stuff)) + 1))
        names = list(self.rng.choice(self.stuff, n_stuff, replace=False))
        if self.stuff_layout == 'bands':
            cuts = sorted(self.rng.choice(np.arange(h // 5, h - h // 5),
                                          n_stuff - 1, replace=False).tolist())
            bounds = [0] + cuts + [h]
            regions = []
            for name, y0, y1 in zip(names, bounds[:-1], bounds[1:]):
                m = np.zeros((h, w), bool)
                m[y0:y1] = True
                regions.append((name, m))
            return regions
        # irregular: Voronoi cells of random seeds under wavy distortion,
        # each cell given one of the names (every name owns >= 1 cell)
        cells = n_stuff + int(self.rng.integers(0, n_stuff + 1))
        owner = np.concatenate([np.arange(n_stuff),
                                self.rng.integers(0, n_stuff,
                                                  cells - n_stuff)])
        pts = self.rng.uniform((0, 0), (h, w), (cells, 2))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        amp, freq = self.rng.uniform(3, 10), self.rng.uniform(8, 20)
        yy = yy + amp * np.sin(xx / freq + self.rng.uniform(0, 6))
        xx = xx + amp * np.sin(yy / freq + self.rng.uniform(0, 6))
        d = (yy[None] - pts[:, 0, None, None])**2 + \
            (xx[None] - pts[:, 1, None, None])**2
        label = owner[d.argmin(0)]
        return [(name, label == k) for k, name in enumerate(names)]

    def sample(self) -> Tuple[np.ndarray, List[Segment], bool]:
        """One image: (H, W, 3) uint8 RGB, its segments, and a gray flag.

        Segments do not overlap (later shapes occlude earlier ones and the
        occluded pixels are removed); every pixel belongs to one segment.
        """
        h = int(self.rng.integers(*self.size_range))
        w = int(self.rng.integers(*self.size_range))
        img = np.zeros((h, w, 3), np.float32)
        segments: List[Segment] = []
        for name, m in self._stuff_regions(h, w):
            img[m] = self._texture(name, h, w)[m]
            segments.append(Segment(name, False, m))
        for _ in range(int(self.rng.integers(self.min_objects,
                                             self.max_objects + 1))):
            if self.things is None:
                color = str(self.rng.choice(self.colors))
                shape = str(self.rng.choice(self.shapes))
            else:
                color, shape = str(self.rng.choice(self.things)).split(' ')
            m = self._shape_mask(shape, h, w)
            for s in segments:
                s.mask &= ~m
            jitter = self.rng.integers(-25, 26, 3)
            img[m] = np.clip(np.array(CROWDED_COLORS[color]) + jitter, 0, 255)
            segments.append(Segment(f'{color} {shape}', True, m, color, shape))
        segments = [s for s in segments if s.area > 0]
        img = np.clip(img, 0, 255).astype(np.uint8)
        gray = bool(self.rng.random() < self.gray_prob)
        return img, segments, gray


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

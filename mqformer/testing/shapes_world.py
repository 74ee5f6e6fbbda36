"""A procedurally drawn "shapes world" (written to disk by world_writers.py).

Used by the tests, the demo and ``tools/dataset_converters/make_shapes_world.py``.
Things are coloured shapes (instances); stuff are textured regions (sky, grass,
water, road) that tile the background. Images can be non-square and grayscale.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

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

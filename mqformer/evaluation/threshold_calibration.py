"""Post-processing thresholds chosen on validation images, per model.

The network runs once over the calibration images; the inputs of the model's
fusion head (MQ-Former's :class:`MQFusionHead` or mmdet's
``MaskFormerFusionHead`` of Mask2Former/MaskFormer) are kept, and the
post-processing alone is repeated at every setting of the grid.
"""
import copy
import itertools
import os.path as osp
from typing import Dict, List, Sequence

import torch
from mmdet.structures import DetDataSample
from torch import nn

# what decides PQ in both fusion heads: the score a query needs to enter the
# merge (object_mask_thr) and the share of its mask it must keep (iou_thr)
PANOPTIC_GRID = dict(
    object_mask_thr=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    iou_thr=(0.5, 0.65, 0.8))


def fusion_head(model: nn.Module) -> nn.Module:
    """The module whose ``predict`` turns query outputs into task outputs
    and whose ``test_cfg`` holds the thresholds."""
    model = getattr(model, 'module', model)
    for name in ('fusion_head', 'panoptic_fusion_head'):
        if hasattr(model, name):
            return getattr(model, name)
    raise TypeError(f'{type(model).__name__} has no fusion head (MQ-Former: '
                    'fusion_head; Mask2Former/MaskFormer: '
                    'panoptic_fusion_head): nothing to calibrate')


def _detach(x):
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_detach(v) for v in x)
    return copy.deepcopy(x)


class PostProcessCache:
    """The fusion head's inputs for a set of images, recorded once.

    Args:
        model (nn.Module): MQ-Former or an mmdet MaskFormer-family model.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = getattr(model, 'module', model)
        self.head = fusion_head(self.model)
        self.calls: List[tuple] = []
        self.img_paths: List[str] = []

    @torch.no_grad()
    def record(self, dataloader) -> 'PostProcessCache':
        """Run ``model.test_step`` on every batch of ``dataloader`` and keep
        what its fusion head was given."""
        predict = self.head.predict

        def recording(*args, **kwargs):
            self.calls.append((_detach(args), _detach(kwargs)))
            return predict(*args, **kwargs)

        self.head.predict = recording
        self.model.eval()
        try:
            for data_batch in dataloader:
                for sample in self.model.test_step(data_batch):
                    self.img_paths.append(sample.metainfo.get('img_path'))
        finally:
            del self.head.predict  # the class's method again
        return self

    @torch.no_grad()
    def replay(self) -> List[DetDataSample]:
        """Data samples post-processed with the head's current ``test_cfg``.
        """
        out = []
        for args, kwargs in self.calls:
            result = self.head.predict(*args, **kwargs)
            if isinstance(result, dict):  # MQFusionHead: one image
                meta = args[3] if len(args) > 3 else kwargs['img_meta']
                sample = DetDataSample(metainfo=meta)
                for key, value in result.items():
                    setattr(sample, key, value)
                out.append(sample)
            else:  # MaskFormerFusionHead: a batch
                samples = args[2] if len(args) > 2 else \
                    kwargs['batch_data_samples']
                out.extend(self.model.add_pred_to_datasample(
                    copy.deepcopy(samples), result))
        return out


def check_disjoint(calib_paths: Sequence[str],
                   test_paths: Sequence[str]) -> None:
    """Refuse a calibration set that shares an image with the test set
    (same file, or same file name)."""
    names = {osp.basename(p) for p in test_paths}
    full = {osp.abspath(p) for p in test_paths}
    shared = sorted(p for p in calib_paths
                    if osp.abspath(p) in full or osp.basename(p) in names)
    if shared:
        raise ValueError(
            f'calibration images overlap the test images ({len(shared)}, '
            f'e.g. {shared[:3]}): thresholds must be chosen on validation '
            'images disjoint from the test set')


def sweep(cache: PostProcessCache, evaluator, grid: Dict[str, Sequence],
          key: str = 'coco_panoptic/PQ', extra_cfg: dict = None) -> dict:
    """Evaluate every setting of ``grid`` (the product of its values) on the
    cached images; return ``chosen`` (the setting with the best ``key``, the
    first on ties), ``table`` (setting and metrics of each) and ``at_edge``
    (the keys whose chosen value is the smallest or largest of several
    tried: the best may lie outside the grid).

    ``evaluator``: an mmengine ``Evaluator`` whose ``dataset_meta`` is set.
    ``extra_cfg``: ``test_cfg`` values held during the sweep (e.g. other
    outputs switched off).
    """
    test_cfg = cache.head.test_cfg
    before = copy.deepcopy(dict(test_cfg))
    names = list(grid)
    table = []
    try:
        for values in itertools.product(*(grid[n] for n in names)):
            setting = dict(zip(names, values))
            test_cfg.update(dict(extra_cfg or {}, **setting))
            samples = cache.replay()
            evaluator.process(data_samples=samples)
            metrics = evaluator.evaluate(len(samples))
            table.append(dict(setting=setting, metrics={
                k: float(v) for k, v in metrics.items()
                if isinstance(v, (int, float))}))
    finally:
        test_cfg.clear()
        test_cfg.update(before)
    best = max(range(len(table)), key=lambda i: (
        table[i]['metrics'][key], -i))
    chosen = table[best]['setting']
    return dict(chosen=chosen, key=key, best=table[best]['metrics'][key],
                table=table, at_edge=grid_edges(grid, chosen))


def grid_edges(grid: Dict[str, Sequence], chosen: dict) -> List[str]:
    """The keys of ``grid`` (more than one value) whose ``chosen`` value is
    the grid's smallest or largest."""
    return [k for k, values in grid.items() if len(set(values)) > 1
            and chosen[k] in (min(values), max(values))]


def panoptic_metric(evaluators, where: str) -> dict:
    """The first ``CocoPanopticMetric`` config of ``evaluators`` (a dict or
    a list of them); ``where`` names the config key in the error."""
    evals = evaluators if isinstance(evaluators, (list, tuple)) else \
        [evaluators]
    evals = [e for e in evals if e['type'] == 'CocoPanopticMetric']
    if not evals:
        raise ValueError(f'{where} has no CocoPanopticMetric')
    return evals[0]


def dataset_img_paths(dataset) -> List[str]:
    """The image paths of an mmengine dataset (its data list)."""
    dataset.full_init()
    paths = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        paths.append(info.get('img_path') or info.get('img'))
    return paths


def calibrate(cfg, checkpoint: str, grid: Dict[str, Sequence] = None,
              work_dir: str = None) -> dict:
    """Choose the panoptic thresholds of the model in ``cfg`` (an mmengine
    config) with weights ``checkpoint`` on the config's validation images
    (``val_dataloader``), scored by its ``CocoPanopticMetric`` in
    ``val_evaluator``. Refuses validation images that are test images
    (``test_dataloader``). Returns :func:`sweep`'s dict plus
    ``num_images`` and ``img_paths`` (what was read)."""
    from mmengine.runner import Runner

    from mqformer.compat import checkpoint_io
    cfg = copy.deepcopy(cfg)
    if cfg.get('val_dataloader') is None:
        raise ValueError('calibration needs val_dataloader/val_evaluator: '
                         'validation images disjoint from the test images')
    cfg.val_evaluator = dict(
        panoptic_metric(cfg.val_evaluator, 'calibration: val_evaluator'),
        nproc=1)
    cfg.val_cfg = cfg.get('val_cfg') or dict(type='ValLoop')
    cfg.work_dir = work_dir or cfg.get('work_dir') or 'work_dirs/calibration'
    cfg.log_level = 'WARNING'
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler'):
        cfg[key] = None
    cfg.load_from = None
    runner = Runner.from_cfg(cfg)
    loop = runner.val_loop
    calib = dataset_img_paths(loop.dataloader.dataset)
    if cfg.get('test_dataloader') is not None:
        check_disjoint(calib, dataset_img_paths(
            runner.test_dataloader.dataset))
    with checkpoint_io():
        runner.load_checkpoint(checkpoint, map_location='cpu', strict=True)
    cache = PostProcessCache(runner.model).record(loop.dataloader)
    # only the panoptic output is scored
    extra = {k: False for k in ('instance_on', 'semantic_on')
             if k in cache.head.test_cfg or k == 'instance_on'}
    out = sweep(cache, loop.evaluator, grid or PANOPTIC_GRID,
                extra_cfg=dict(extra, panoptic_on=True))
    out.update(num_images=len(cache.img_paths), img_paths=cache.img_paths)
    return out

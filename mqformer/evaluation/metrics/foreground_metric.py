"""Foreground / salient-object metric: MSE and MAE of the soft map."""
from collections import OrderedDict
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from mmdet.registry import METRICS


@METRICS.register_module()
class ForegroundMetric(BaseMetric):
    """MSE and MAE between the predicted soft foreground map (``pred_fg``,
    values in [0, 1]) and the binary ground truth, at ground-truth resolution,
    averaged over images (as pysodmetrics' MAE), and the IoU of the map
    thresholded at 0.5.

    The ground truth is the union of the sample's ``gt_instances.masks`` (or
    ``gt_masks`` in its metainfo), at the original image size.
    """
    default_prefix = 'fg'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            pred = ds['pred_fg']['sem_seg'].float()[0]
            gt = ds.get('gt_masks')
            if gt is None:
                gt = ds['gt_instances']['masks']
            gt = gt.to_ndarray() if hasattr(gt, 'to_ndarray') else \
                np.asarray(gt.cpu() if torch.is_tensor(gt) else gt)
            gt = torch.from_numpy(gt.any(0) if gt.ndim == 3 else gt).float()
            if len(gt.shape) == 2 and pred.shape != gt.shape:
                pred = F.interpolate(pred[None, None], size=gt.shape,
                                     mode='bilinear', align_corners=False)[0, 0]
            pred = pred.clamp(0, 1).cpu()
            err = pred - gt
            binary = pred > 0.5
            inter = (binary & gt.bool()).sum().item()
            union = (binary | gt.bool()).sum().item()
            self.results.append(
                (err.pow(2).mean().item(), err.abs().mean().item(),
                 inter / union if union else 1.0))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        mse, mae, iou = (float(np.mean(x)) for x in zip(*results))
        return OrderedDict(mse=mse, mae=mae, iou=iou)

"""Leaderboard files through mmdet's own switch (``format_only`` and an
output location), for the two metrics whose mmdet versions cannot write
them: ADE20K server PNGs (label ids + 1) and RefCOCO per-expression masks."""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from PIL import Image

from mmdet.evaluation.metrics import RefSegMetric, SemSegMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class MQSemSegMetric(SemSegMetric):
    """mmdet's ``SemSegMetric`` whose ``output_dir`` PNGs use the
    benchmark's label ids: ``label_offset`` is added to each predicted class
    index (ADE20K's server wants 1..150 with 0 for "other", while a
    ``reduce_zero_label`` dataset predicts 0..149: ``label_offset=1``).

    Args:
        label_offset (int): added to the saved predictions. Defaults to 0.
    """

    def __init__(self, *args, label_offset: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.label_offset = label_offset

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        out_dir, self.output_dir = self.output_dir, None  # scores unchanged
        try:
            super().process(data_batch, data_samples)
        finally:
            self.output_dir = out_dir
        if out_dir is None:
            return
        for s in data_samples:
            pred = s['pred_sem_seg']['sem_seg'].squeeze().cpu().numpy()
            name = osp.splitext(osp.basename(s['img_path']))[0] + '.png'
            Image.fromarray((pred + self.label_offset).astype(np.uint8)).save(
                osp.join(out_dir, name))


@METRICS.register_module()
class MQRefSegMetric(RefSegMetric):
    """mmdet's ``RefSegMetric`` plus submission files: with
    ``outfile_prefix`` each expression's predicted mask is saved as
    ``{outfile_prefix}/{img_id}_{k}.png`` (0/255) and
    ``{outfile_prefix}.json`` lists ``image_id``, ``expression`` (text k of
    the image) and ``mask`` (the PNG's name); with ``format_only`` no ground
    truth is read and no score is computed (test sets without masks).
    """

    def __init__(self, *args, format_only: bool = False,
                 outfile_prefix: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if format_only and outfile_prefix is None:
            raise ValueError('RefSegMetric: format_only needs outfile_prefix '
                             '(where the masks go)')
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if self.outfile_prefix is not None:
            os.makedirs(self.outfile_prefix, exist_ok=True)
            entries = []
            for s in data_samples:
                masks = s['pred_instances']['masks'].bool().cpu().numpy()
                img_id = s.get('img_id', osp.splitext(osp.basename(
                    s['img_path']))[0])
                for k, (text, m) in enumerate(zip(s['texts'], masks)):
                    name = f'{img_id}_{k}.png'
                    Image.fromarray(m.astype(np.uint8) * 255).save(
                        osp.join(self.outfile_prefix, name))
                    entries.append(dict(image_id=img_id, expression=text,
                                        mask=name))
            # in results, so every rank's entries reach compute_metrics
            self.results.append(dict(entries=entries))
        if not self.format_only:
            super().process(data_batch, data_samples)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        entries = [e for r in results if isinstance(r, dict)
                   for e in r['entries']]
        stats = [r for r in results if not isinstance(r, dict)]
        if self.outfile_prefix is not None:
            with open(f'{self.outfile_prefix}.json', 'w') as f:
                json.dump(entries, f)
            print_log(f'{len(entries)} expression masks saved to '
                      f'{self.outfile_prefix}/ ({self.outfile_prefix}.json)',
                      logger='current')
        if self.format_only:
            return {}
        return super().compute_metrics(stats)

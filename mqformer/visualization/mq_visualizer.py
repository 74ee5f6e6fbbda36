"""Drawing every task's outputs with mmdet's DetLocalVisualizer."""
from typing import Optional

import numpy as np

from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer


@VISUALIZERS.register_module()
class MQLocalVisualizer(DetLocalVisualizer):
    """mmdet's ``DetLocalVisualizer`` whose class names are each sample's own
    ``texts`` (labels index them: class names or referring expressions), so
    instance, panoptic, semantic, referring and detection outputs are drawn
    with the texts the model was asked about; a foreground map (``pred_fg``)
    is drawn as a red overlay on the prediction side.
    """

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[DetDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       **kwargs) -> None:
        meta = self.dataset_meta
        if data_sample is not None and 'texts' in data_sample:
            texts = list(data_sample.texts)
            colors = np.random.RandomState(0).randint(40, 255, (len(texts), 3))
            self.dataset_meta = dict(classes=texts,
                                     palette=[tuple(c) for c in colors.tolist()])
        if data_sample is not None and draw_pred and 'pred_fg' in data_sample:
            fg = data_sample.pred_fg.sem_seg[0].float().cpu().numpy()
            if fg.shape != image.shape[:2]:
                import mmcv
                fg = mmcv.imresize(fg, image.shape[1::-1])
            fg = np.clip(fg, 0, 1)[..., None]
            red = np.array([255, 0, 0], np.float32)
            image = (image * (1 - 0.6 * fg) + red * 0.6 * fg).astype(np.uint8)
        if data_sample is not None and 'pred_panoptic_seg' in data_sample:
            from mmdet.evaluation.functional import INSTANCE_OFFSET
            pan = data_sample.pred_panoptic_seg.sem_seg
            if bool(((pan % INSTANCE_OFFSET) >= len(
                    self.dataset_meta.get('classes', ()))).all()):
                # nothing but void: mmdet's drawer cannot stack zero segments
                data_sample = data_sample.clone()
                del data_sample.pred_panoptic_seg
        try:
            super().add_datasample(name, image, data_sample, draw_gt=draw_gt,
                                   draw_pred=draw_pred, **kwargs)
        finally:
            self.dataset_meta = meta

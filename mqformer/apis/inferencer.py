"""MQFormerInferencer: images + texts -> every task's results, overlays, JSON."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmengine.dataset import Compose
from pycocotools import mask as mask_utils

from .checkpoint_fit import load_fitting_weights

TASKS = ('panoptic', 'instance', 'semantic', 'referring', 'foreground',
         'detection')


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO RLE with a str ``counts``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode()
    return rle


def read_image(path: str) -> np.ndarray:
    """Any JPEG/PNG (grayscale, RGBA, CMYK, 16-bit and EXIF-rotated
    included: the EXIF orientation is applied, as viewers show the photo) ->
    (H, W, 3) uint8 BGR, or a ``ValueError`` naming the file (empty,
    undecodable, truncated JPEG)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    with open(path, 'rb') as f:
        data = f.read()
    if not data:
        raise ValueError(f'cannot read image {path}: the file is empty '
                         '(0 bytes)')
    if data[:2] == b'\xff\xd8' and b'\xff\xd9' not in data[-1024:]:
        # OpenCV decodes a cut-off JPEG without an error, grey below the cut
        raise ValueError(f'cannot read image {path}: truncated JPEG (no '
                         'end-of-image marker; was the download cut off?)')
    img = mmcv.imfrombytes(data, flag='color')  # gray -> 3 ch, drops alpha
    if img is None:
        raise ValueError(f'cannot decode image {path} (not a readable '
                         'JPEG/PNG)')
    return img


def check_texts(texts: Sequence[str]) -> None:
    """A clear error for a text list the model cannot answer."""
    if isinstance(texts, str):
        raise TypeError(f'texts must be a list of strings, got the string '
                        f'{texts!r} (wrap it in a list)')
    if not texts:
        raise ValueError('give at least one text')
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f'texts[{i}] is {type(t).__name__} {t!r}, not a '
                            'string')
        if not t.strip():
            raise ValueError(f'texts[{i}] is empty; every text must name '
                             'something')


def predictions_to_json(sample, task: str, score_thr: float = 0.3) -> dict:
    """A predicted data sample as plain JSON (RLE masks, xyxy boxes, scores,
    texts, the query of each prediction); instances below ``score_thr`` are
    left out (all kept for ``referring``)."""
    texts = list(sample.texts)
    n_cond = sample.metainfo.get('num_conditional_queries')

    def query(index: int) -> dict:
        """The query that made a prediction and its type."""
        if index < 0 or n_cond is None:
            return {}
        return dict(query_index=index, query_type='learnable'
                    if index >= n_cond else 'conditional')

    out = dict(image=sample.img_path, task=task, texts=texts,
               height=int(sample.ori_shape[0]),
               width=int(sample.ori_shape[1]))
    if 'pred_instances' in sample:
        inst = sample.pred_instances
        keep = inst.scores >= (0 if task == 'referring' else
                               score_thr)
        inst = inst[keep]
        items = []
        for i in range(len(inst)):
            item = dict(text=texts[int(inst.labels[i])],
                        label=int(inst.labels[i]),
                        score=float(inst.scores[i]),
                        bbox=[float(v) for v in inst.bboxes[i]])
            if 'masks' in inst:
                item['mask'] = encode_mask(inst.masks[i].cpu().numpy())
            if 'query_index' in inst:
                item.update(query(int(inst.query_index[i])))
            items.append(item)
        out['instances'] = items
    if 'pred_panoptic_seg' in sample:
        from mmdet.evaluation.functional import INSTANCE_OFFSET
        pan = sample.pred_panoptic_seg.sem_seg[0].cpu().numpy()
        qmap = sample.pred_panoptic_seg.get('query_index')
        qmap = qmap[0].cpu().numpy() if qmap is not None else None
        segs = []
        for sid in np.unique(pan):
            label = int(sid % INSTANCE_OFFSET)
            if label >= len(texts):
                continue  # void
            m = pan == sid
            seg = dict(id=int(sid), text=texts[label], label=label,
                       is_thing=bool(sid >= INSTANCE_OFFSET),
                       area=int(m.sum()), mask=encode_mask(m))
            if qmap is not None:  # a stuff segment may merge queries:
                ids, counts = np.unique(qmap[m], return_counts=True)
                seg.update(query(int(ids[counts.argmax()])))  # largest
            segs.append(seg)
        out['panoptic'] = segs
    if 'pred_sem_seg' in sample:
        sem = sample.pred_sem_seg.sem_seg[0].cpu().numpy()
        out['semantic'] = [
            dict(text=texts[int(l)], label=int(l),
                 area=int((sem == l).sum()), mask=encode_mask(sem == l))
            for l in np.unique(sem)
        ]
    if 'pred_fg' in sample:
        fg = sample.pred_fg.sem_seg[0].float().cpu().numpy()
        out['foreground'] = dict(text=texts[0], mean=float(fg.mean()),
                                 mask=encode_mask(fg > 0.5))
    return out


def test_scale_of(cfg) -> Optional[tuple]:
    """The test pipeline's ``Resize`` scale (w, h) of a config, or
    ``None``."""
    for t in (cfg or {}).get('test_dataloader', {}).get('dataset', {}).get(
            'pipeline', []):
        if t.get('type') == 'Resize':
            return tuple(t['scale'])
    return None


def task_switches(task: str) -> dict:
    """``MQFusionHead.test_cfg`` switches with only ``task`` on."""
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    return {f'{t}_on': t == task for t in TASKS}


def init_model(config, weights: Optional[str] = None,
               device: str = 'cpu') -> torch.nn.Module:
    """A model from a config (path or Config) in eval mode, with ``weights``
    loaded weights-only and checked to fit (:func:`load_fitting_weights`);
    ``dataset_meta`` from the checkpoint."""
    import warnings

    import mqformer  # noqa: F401
    from mmdet.apis import init_detector
    # the weights are loaded here, not by init_detector: a run on a
    # ConcatDataset of datasets with different metainfo (the demo, every
    # Table 2 mix) stores mmdet's list of metainfos as dataset_meta, which
    # init_detector cannot read (it calls .items() on it). Its "checkpoint
    # is None" warning is dropped at display: it calls simplefilter('once')
    # itself, which outranks any filter set here.
    with warnings.catch_warnings():
        show = warnings.showwarning

        def show_others(message, *args, **kwargs):
            if 'checkpoint is None' not in str(message):
                show(message, *args, **kwargs)

        warnings.showwarning = show_others
        model = init_detector(config, None, device=device)
    if weights:
        ckpt = load_fitting_weights(model, weights)
        meta = ckpt.get('meta', {}).get('dataset_meta')
        if isinstance(meta, list):  # one metainfo per mixed dataset
            meta = meta[0]
        if meta:
            model.dataset_meta = dict(meta)
    return model


class MQFormerInferencer:
    """Run an MQ-Former checkpoint on images with user texts, for any task.

    Args:
        config (str | Config): model config (its test pipeline's ``Resize``
            scale is used).
        weights (str, optional): checkpoint; ``None`` keeps random weights.
        device (str): ``'cpu'`` or ``'cuda:0'``...
        score_thr (float): minimum score of drawn and saved instances.

    Example::

        inferencer = MQFormerInferencer('configs/...py', 'iter_600.pth')
        results = inferencer('img.jpg', texts=['sky', 'red circle'],
                             task='panoptic', stuff_texts=['sky'],
                             out_dir='outputs')
    """

    def __init__(self, config, weights: Optional[str] = None,
                 device: str = 'cpu', score_thr: float = 0.3) -> None:
        from mmdet.registry import VISUALIZERS
        self.model = init_model(config, weights, device)
        self.cfg = self.model.cfg
        self.score_thr = score_thr
        self.pipeline = Compose([
            dict(type='Resize', scale=self._test_scale(), keep_ratio=True),
            dict(type='PackMQInputs')
        ])
        self.visualizer = VISUALIZERS.build(
            dict(type='MQLocalVisualizer',
                 name=f'mqformer_inferencer_{id(self)}'))

    def _test_scale(self):
        return test_scale_of(self.cfg) or (1333, 800)

    def _switches(self, task: str) -> dict:
        return task_switches(task)

    @torch.no_grad()
    def predict(self, img: Union[str, np.ndarray], texts: Sequence[str],
                task: str = 'panoptic',
                stuff_texts: Sequence[str] = ()) -> 'DetDataSample':  # noqa
        """One image (path or BGR array) -> a data sample with predictions."""
        check_texts(texts)
        path = img if isinstance(img, str) else None
        img = read_image(img) if path else img
        results = dict(
            img=img, img_path=path or '', img_shape=img.shape[:2],
            ori_shape=img.shape[:2], texts=list(texts),
            text_type='phrase' if task == 'referring' else 'class',
            task=task,
            text_is_thing=[t not in set(stuff_texts) for t in texts])
        data = self.pipeline(results)
        data = dict(inputs=[data['inputs']],
                    data_samples=[data['data_samples']])
        head = self.model.fusion_head
        saved = dict(head.test_cfg)
        head.test_cfg.update(self._switches(task))
        try:
            return self.model.test_step(data)[0]
        finally:
            head.test_cfg.clear()
            head.test_cfg.update(saved)

    def to_json(self, sample, task: str,
                score_thr: Optional[float] = None) -> dict:
        """Predictions as plain JSON (RLE masks, xyxy boxes, scores, texts)."""
        return predictions_to_json(
            sample, task, self.score_thr if score_thr is None else score_thr)

    def draw(self, img: np.ndarray, sample, score_thr: Optional[float] = None,
             out_file: Optional[str] = None) -> np.ndarray:
        """(H, W, 3) BGR image + predictions -> (H, W, 3) RGB overlay
        (also written to ``out_file`` when given)."""
        self.visualizer.add_datasample(
            'overlay', mmcv.bgr2rgb(img), sample, draw_gt=False,
            pred_score_thr=self.score_thr if score_thr is None else score_thr,
            out_file=out_file)
        return self.visualizer.get_image()

    def __call__(self, inputs: Union[str, np.ndarray, List],
                 texts: Sequence[str], task: str = 'panoptic',
                 stuff_texts: Sequence[str] = (),
                 out_dir: Optional[str] = None) -> List[Dict]:
        """Images (paths or arrays) -> JSON results; with ``out_dir`` also
        ``<name>.jpg`` overlays and ``<name>.json`` files."""
        inputs = inputs if isinstance(inputs, list) else [inputs]
        results = []
        for k, img in enumerate(inputs):
            sample = self.predict(img, texts, task, stuff_texts)
            res = self.to_json(sample, task)
            results.append(res)
            if out_dir:
                os.makedirs(out_dir, exist_ok=True)
                name = osp.splitext(osp.basename(img))[0] if isinstance(
                    img, str) else f'image_{k:05d}'
                bgr = read_image(img) if isinstance(img, str) else img
                self.draw(bgr, sample, out_file=osp.join(out_dir,
                                                         name + '.jpg'))
                with open(osp.join(out_dir, name + '.json'), 'w') as f:
                    json.dump(res, f)
        return results

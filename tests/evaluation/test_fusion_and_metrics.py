"""Every task's output from one set of query predictions, scored with the
benchmarks' metrics: perfect predictions score perfectly, imperfect ones get
their hand-computed values."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.structures import PixelData

THINGS = [f'{c} {s}' for c in ('red', 'green', 'blue', 'yellow', 'purple',
                               'orange') for s in ('circle', 'square', 'triangle')]
STUFF = ['sky', 'grass', 'water', 'road']


def fusion(**cfg):
    import mqformer  # noqa: F401
    from mmdet.registry import MODELS
    return MODELS.build(dict(type='MQFusionHead', test_cfg=cfg))


@pytest.fixture(scope='module')
def val_samples(shapes_root):
    """The panoptic val fixture through the test pipeline (no resize)."""
    import mqformer  # noqa: F401
    from mmdet.datasets import CocoPanopticDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    ds = CocoPanopticDataset(
        data_root=shapes_root,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        metainfo=dict(classes=THINGS + STUFF, thing_classes=THINGS,
                      stuff_classes=STUFF),
        test_mode=True, return_classes=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadPanopticSegments'),
                  dict(type='ClassNamesToTexts', shuffle=False,
                       task='panoptic'),
                  dict(type='PackMQInputs')])
    samples = []
    for i in range(len(ds)):
        s = ds[i]['data_samples']
        s.set_metainfo(dict(batch_input_shape=s.img_shape))
        samples.append(s)
    return ds, samples


def perfect_predictions(sample, n_pad=5):
    """One-hot logits, GT masks and boxes for every GT segment, plus
    ``n_pad`` empty low-score queries. Returns (N, T), (N, 4), (N, H, W)."""
    gt = sample.gt_instances
    T = len(sample.texts)
    h, w = sample.img_shape
    n = len(gt)
    cls = torch.full((n + n_pad, T), -20.0)
    cls[torch.arange(n), gt.labels] = 20.0
    masks = torch.full((n + n_pad, h, w), -20.0)
    masks[:n][torch.from_numpy(gt.masks.masks.astype(bool))] = 20.0
    b = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else gt.bboxes
    boxes = torch.zeros(n + n_pad, 4)
    scale = torch.tensor([w, h, w, h], dtype=torch.float32)
    xyxy = b / scale
    boxes[:n] = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2,
                           xyxy[:, 2:] - xyxy[:, :2]], 1)
    boxes[n:] = torch.tensor([0.5, 0.5, 0.1, 0.1])
    return cls, boxes, masks


def run_head(head, sample, preds):
    out = head.predict(*preds, sample.metainfo, rescale=True)
    res = copy.deepcopy(sample)
    for k, v in out.items():
        setattr(res, k, v)
    return res


def test_perfect_panoptic_is_pq_100(val_samples, shapes_root):
    from mmdet.evaluation import CocoPanopticMetric
    ds, samples = val_samples
    head = fusion(panoptic_on=True, instance_on=False)
    metric = CocoPanopticMetric(
        ann_file=osp.join(shapes_root, 'annotations/panoptic_val.json'),
        seg_prefix=osp.join(shapes_root, 'annotations/panoptic_val/'))
    metric.dataset_meta = ds.metainfo
    for s in samples:
        res = run_head(head, s, perfect_predictions(s))
        metric.process({}, [res.to_dict()])
    out = metric.evaluate(len(samples))
    assert out['coco_panoptic/PQ'] == pytest.approx(100.0)
    assert out['coco_panoptic/PQ_th'] == pytest.approx(100.0)
    assert out['coco_panoptic/PQ_st'] == pytest.approx(100.0)


def test_perfect_instances_are_ap_100(val_samples, shapes_root):
    from mmdet.evaluation import CocoMetric
    ds, samples = val_samples
    head = fusion(instance_on=True)
    metric = CocoMetric(
        ann_file=osp.join(shapes_root, 'annotations/instances_val.json'),
        metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=THINGS)
    for s in samples:
        # instance evaluation keeps the thing texts only
        keep = [i for i, t in enumerate(s.texts) if t in THINGS]
        cls, boxes, masks = perfect_predictions(s)
        is_thing = torch.tensor([s.texts[l] in THINGS
                                 for l in s.gt_instances.labels.tolist()]
                                + [True] * 5)
        cls = cls[is_thing][:, keep]
        t = copy.deepcopy(s)
        t.set_metainfo(dict(texts=[s.texts[i] for i in keep]))
        res = run_head(head, t, (cls, boxes[is_thing], masks[is_thing]))
        d = res.to_dict()
        metric.process({}, [d])
    out = metric.evaluate(len(samples))
    assert out['coco/segm_mAP'] == pytest.approx(1.0)
    assert out['coco/bbox_mAP'] == pytest.approx(1.0)


def _sem_gt(sample):
    gt = sample.gt_instances
    h, w = sample.ori_shape
    sem = torch.full((h, w), 255, dtype=torch.long)
    for m, l in zip(gt.masks.masks, gt.labels.tolist()):
        sem[torch.from_numpy(m.astype(bool))] = l
    return sem


def test_perfect_semantic_is_miou_100_and_chunking_changes_nothing(
        val_samples):
    from mmdet.evaluation import SemSegMetric
    ds, samples = val_samples
    metric = SemSegMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=THINGS + STUFF)
    for s in samples:
        preds = perfect_predictions(s)
        full = run_head(fusion(semantic_on=True, instance_on=False,
                               text_chunk=10_000), s, preds)
        chunked = run_head(fusion(semantic_on=True, instance_on=False,
                                  text_chunk=3), s, preds)
        assert torch.equal(full.pred_sem_seg.sem_seg,
                           chunked.pred_sem_seg.sem_seg)
        full.gt_sem_seg = PixelData(sem_seg=_sem_gt(s)[None])
        metric.process({}, [full.to_dict()])
    out = metric.evaluate(len(samples))
    assert out['mIoU'] == pytest.approx(100.0)


@pytest.mark.parametrize('ori_shape', [(40, 36), (80, 60)])
def test_instances_and_referring_equal_upsampling_every_mask(ori_shape):
    """The fast path (distinct queries upsampled once, same size not
    resized again) gives what upsampling all N masks per instance gives."""
    import torch.nn.functional as F
    torch.manual_seed(0)
    N, T = 12, 5  # top-100 over 12 x 5 pairs: every query repeats
    cls, masks = torch.randn(N, T), torch.randn(N, 12, 10) * 4
    boxes = torch.rand(N, 4) * 0.5 + 0.25
    meta = dict(img_shape=(40, 36), batch_input_shape=(48, 40),
                ori_shape=ori_shape, scale_factor=(36 / ori_shape[1],
                                                   40 / ori_shape[0]))
    out = fusion(referring_on=False).predict(cls, boxes, masks, meta)
    full = F.interpolate(masks[None], size=(48, 40), mode='bilinear',
                         align_corners=False)[0, :, :40, :36]
    full = F.interpolate(full[None], size=ori_shape, mode='bilinear',
                         align_corners=False)[0].sigmoid()
    scores, idx = cls.sigmoid().flatten().topk(N * T)
    q = idx // T
    binary = full[q] > 0.5
    quality = (full[q] * binary).flatten(1).sum(1) / \
        binary.flatten(1).sum(1).clamp(min=1)
    inst = out['pred_instances']
    assert len(q.unique()) < len(q)
    assert torch.equal(inst.labels, idx % T)
    assert torch.equal(inst.masks, binary)
    assert torch.allclose(inst.scores, scores * quality)
    ref = fusion().predict(cls, boxes, masks, dict(meta, task='referring'))
    best = cls.sigmoid().argmax(0)
    assert torch.equal(ref['pred_instances'].masks, full[best] > 0.5)


def test_chunked_semantic_equals_unchunked_on_a_large_random_vocabulary():
    torch.manual_seed(0)
    probs, masks = torch.rand(30, 1203), torch.rand(30, 24, 20)
    a = fusion(text_chunk=100).semantic(probs, masks).sem_seg
    b = fusion(text_chunk=5000).semantic(probs, masks).sem_seg
    ref = torch.einsum('nt,nhw->thw', probs, masks).argmax(0)
    assert torch.equal(a[0], ref) and torch.equal(b[0], ref)


def test_referring_perfect_ciou_100_and_half_mask_ciou_50(val_samples):
    from mmdet.evaluation import RefSegMetric
    ds, samples = val_samples
    s = samples[0]
    cls, boxes, masks = perfect_predictions(s)
    gt = s.gt_instances
    # one expression per GT segment, in GT order
    texts = [f'the {s.texts[l]} number {i}' for i, l in
             enumerate(gt.labels.tolist())]
    n = len(gt)
    ref_cls = torch.full((cls.size(0), n), -20.0)
    ref_cls[torch.arange(n), torch.arange(n)] = 20.0
    t = copy.deepcopy(s)
    t.set_metainfo(dict(texts=texts, task='referring',
                        gt_masks=gt.masks))
    metric = RefSegMetric(metric=['cIoU', 'mIoU'])
    res = run_head(fusion(), t, (ref_cls, boxes, masks))
    assert len(res.pred_instances) == n
    metric.process({}, [res.to_dict()])
    out = metric.evaluate(1)
    assert out['cIoU'] == pytest.approx(100.0)
    # imperfect: query 0 predicts only the top half (by rows) of GT 0
    m0 = torch.from_numpy(gt.masks.masks[0].astype(bool))
    rows = torch.nonzero(m0.any(1)).flatten()
    cut = rows[len(rows) // 2]
    half = masks.clone()
    half[0, cut:] = -20.0
    kept = m0[:cut].sum().item()
    metric = RefSegMetric(metric=['cIoU'])
    res = run_head(fusion(), t, (ref_cls, boxes, half))
    metric.process({}, [res.to_dict()])
    total = sum(m.sum() for m in gt.masks.masks)
    expected = 100.0 * (total - (m0.sum().item() - kept)) / total
    assert metric.evaluate(1)['cIoU'] == pytest.approx(expected, rel=1e-4)


def test_foreground_perfect_mse_0_and_flat_half_map(val_samples):
    import mqformer  # noqa: F401
    from mmdet.registry import METRICS
    ds, samples = val_samples
    s = samples[1]
    cls, boxes, masks = perfect_predictions(s)
    gt = s.gt_instances
    is_fg = torch.tensor([s.texts[l] in THINGS for l in gt.labels.tolist()])
    fg_masks = gt.masks.masks[is_fg.numpy()]
    t = copy.deepcopy(s)
    t.set_metainfo(dict(texts=['foreground'], task='foreground'))
    fg_cls = torch.full((cls.size(0), 1), -20.0)
    fg_cls[:len(gt)][is_fg] = 20.0
    res = run_head(fusion(instance_on=False), t, (fg_cls, boxes, masks))
    res.set_metainfo(dict(gt_masks=type(gt.masks)(fg_masks, *s.ori_shape)))
    metric = METRICS.build(dict(type='ForegroundMetric'))
    metric.process({}, [res.to_dict()])
    out = metric.evaluate(1)
    assert out['fg/mse'] == pytest.approx(0.0, abs=1e-6)
    assert out['fg/iou'] == pytest.approx(1.0)
    res.pred_fg = PixelData(sem_seg=torch.full((1, *s.ori_shape), 0.5))
    metric = METRICS.build(dict(type='ForegroundMetric'))
    metric.process({}, [res.to_dict()])
    out = metric.evaluate(1)
    assert out['fg/mse'] == pytest.approx(0.25)
    assert out['fg/mae'] == pytest.approx(0.5)


def test_panoptic_stuff_is_one_segment_things_get_separate_ids():
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    head = fusion(panoptic_on=True, instance_on=False, pano_temp=0)
    h, w = 8, 8
    masks = torch.full((4, h, w), -20.0)
    masks[0, :, :2] = masks[1, :, 6:] = 20.0   # two stuff regions, text 0
    masks[2, :4, 3:5] = masks[3, 4:, 3:5] = 20.0  # two things, text 1
    cls = torch.full((4, 2), -20.0)
    cls[:2, 0] = cls[2:, 1] = 20.0
    pan = head.panoptic(cls.sigmoid(), masks.sigmoid(), [False, True])
    ids = pan.sem_seg[0].unique().tolist()
    stuff_ids = [i for i in ids if i % INSTANCE_OFFSET == 0 and i < 2]
    thing_ids = [i for i in ids if i % INSTANCE_OFFSET == 1]
    assert stuff_ids == [0]   # one stuff segment spanning both regions
    assert (pan.sem_seg[0] == 0).sum() == 32  # both 8x2 regions
    assert len(thing_ids) == 2
    assert 2 in ids  # void (T) where nothing was predicted


def test_panoptic_stuff_duplicates_are_not_rivals_thing_duplicates_are():
    """Two queries with one text cover the same region and each owns half
    of it (left/right by score x mask): a stuff region stays whole, two
    things that split a region both fall under ``iou_thr`` (0.8)."""
    head = fusion(panoptic_on=True, instance_on=False, pano_temp=0,
                  object_mask_thr=0.25, iou_thr=0.8)
    h, w = 8, 8
    masks = torch.full((2, h, w), -20.0)
    masks[0, :, :] = 3.0
    masks[1, :, :] = 3.0
    masks[0, :, :4] = 4.0  # query 0 owns the left half, query 1 the right
    masks[1, :, 4:] = 4.0
    cls = torch.full((2, 1), 2.0)
    for stuff in (True, False):
        pan = head.panoptic(cls.sigmoid(), masks.sigmoid(), [not stuff])
        seg = pan.sem_seg[0]
        if stuff:
            assert (seg == 0).all()  # one segment, every pixel
            assert set(pan.query_index[0].unique().tolist()) <= {0, 1}
        else:
            assert (seg == 1).all()  # void: neither owns 80% of its mask
            assert (pan.query_index[0] == -1).all()


def imperfect(sample):
    """Perfect predictions with the last GT segment missing and the first
    mask shrunk by two rows."""
    cls, boxes, masks = perfect_predictions(sample)
    n = len(sample.gt_instances)
    cls[n - 1] = -20.0
    rows = torch.nonzero((masks[0] > 0).any(1)).flatten()
    masks[0, rows[:2]] = -20.0
    return cls, boxes, masks


def test_panoptic_metric_agrees_with_panopticapi_on_dumped_predictions(
        val_samples, shapes_root, tmp_path):
    from mmdet.evaluation import CocoPanopticMetric
    from panopticapi.evaluation import pq_compute
    ds, samples = val_samples
    head = fusion(panoptic_on=True, instance_on=False)
    ann = osp.join(shapes_root, 'annotations/panoptic_val.json')
    gt_dir = osp.join(shapes_root, 'annotations/panoptic_val/')
    prefix = str(tmp_path / 'dump')
    metric = CocoPanopticMetric(ann_file=ann, seg_prefix=gt_dir,
                                outfile_prefix=prefix)
    metric.dataset_meta = ds.metainfo
    for s in samples:
        metric.process({}, [run_head(head, s, imperfect(s)).to_dict()])
    ours = metric.evaluate(len(samples))
    assert 0 < ours['coco_panoptic/PQ'] < 100
    direct = pq_compute(ann, prefix + '.panoptic.json', gt_dir,
                        prefix + '.panoptic')
    assert ours['coco_panoptic/PQ'] == pytest.approx(
        100 * direct['All']['pq'], abs=1e-3)
    assert ours['coco_panoptic/PQ_st'] == pytest.approx(
        100 * direct['Stuff']['pq'], abs=1e-3)


def test_coco_metric_agrees_with_pycocotools_on_dumped_predictions(
        val_samples, shapes_root, tmp_path):
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    ds, samples = val_samples
    ann = osp.join(shapes_root, 'annotations/instances_val.json')
    prefix = str(tmp_path / 'inst')
    metric = CocoMetric(ann_file=ann, metric=['segm'], outfile_prefix=prefix)
    metric.dataset_meta = dict(classes=THINGS)
    head = fusion(instance_on=True)
    for s in samples:
        keep = [i for i, t in enumerate(s.texts) if t in THINGS]
        cls, boxes, masks = imperfect(s)
        is_thing = torch.tensor([s.texts[l] in THINGS
                                 for l in s.gt_instances.labels.tolist()]
                                + [True] * 5)
        t = copy.deepcopy(s)
        t.set_metainfo(dict(texts=[s.texts[i] for i in keep]))
        res = run_head(head, t, (cls[is_thing][:, keep], boxes[is_thing],
                                 masks[is_thing]))
        metric.process({}, [res.to_dict()])
    ours = metric.evaluate(len(samples))['coco/segm_mAP']
    gt = COCO(ann)
    ev = COCOeval(gt, gt.loadRes(prefix + '.segm.json'), 'segm')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert 0 < ours < 1
    assert ours == pytest.approx(ev.stats[0], abs=1e-3)


def test_instance_boxes_from_masks_with_the_head_box_for_an_empty_mask():
    """box_source='mask': each instance's box is its binary mask's box
    (mmdet's mask2bbox convention, max + 1), in original-image pixels; a
    query whose mask is empty keeps the box head's box."""
    h, w = 32, 48  # mask logits at 1/4 of a 128 x 192 padded input
    mask = torch.full((3, h, w), -10.)
    mask[0, 2:6, 4:10] = 10.   # query 0: rows 2-5, cols 4-9 at 1/4
    mask[1, 10:20, 0:8] = 10.  # query 1
    # query 2: empty mask
    cls = torch.tensor([[5., -9.], [-9., 5.], [5., -9.]])
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 3)  # cxcywh, normalised
    meta = dict(img_shape=(128, 192), batch_input_shape=(128, 192),
                ori_shape=(64, 96), scale_factor=(2.0, 2.0))
    head_out = fusion(max_per_img=3)
    mask_out = fusion(max_per_img=3, box_source='mask')
    a = head_out.predict(cls, boxes, mask, meta)['pred_instances']
    b = mask_out.predict(cls, boxes, mask, meta)['pred_instances']
    by_query = {int(q): box.tolist() for q, box in zip(b.query_index,
                                                       b.bboxes)}
    # 4x upsampling then /2 to the original size: factor 2 on mask pixels
    assert by_query[0] == pytest.approx([8, 4, 20, 12], abs=1)
    assert by_query[1] == pytest.approx([0, 20, 16, 40], abs=1)
    head = {int(q): box.tolist() for q, box in zip(a.query_index, a.bboxes)}
    assert by_query[2] == head[2] == pytest.approx([38.4, 25.6, 57.6, 38.4])
    assert torch.equal(a.scores, b.scores) and torch.equal(a.masks, b.masks)


def test_predictions_know_their_query():
    """Panoptic pixels and instances carry the index of the query that made
    them; a query below the score threshold makes nothing."""
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    h, w = 8, 8
    mask = torch.full((3, h, w), -10.)
    mask[0, :, :4] = 10.   # query 0: sky, left half
    mask[1, :4, 4:] = 10.  # query 1: red circle, top right
    mask[2] = 10.          # query 2: everywhere, but scores low
    cls = torch.tensor([[6., -9.], [-9., 6.], [-9., -3.]])
    meta = dict(img_shape=(32, 32), batch_input_shape=(32, 32),
                ori_shape=(32, 32), scale_factor=(1.0, 1.0),
                text_is_thing=[False, True])
    out = fusion(panoptic_on=True, instance_on=True, max_per_img=2).predict(
        cls, torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 3), mask, meta)
    qmap = out['pred_panoptic_seg'].query_index[0]
    pan = out['pred_panoptic_seg'].sem_seg[0]
    # inside each region (its border is bilinear)
    assert (qmap[:, :14] == 0).all() and (pan[:, :14] == 0).all()
    assert (qmap[:14, 18:] == 1).all()
    assert (pan[:14, 18:] % INSTANCE_OFFSET == 1).all()
    assert (qmap[18:, 18:] == -1).all()  # void: query 2 is below threshold
    assert ((qmap == -1) == (pan == 2)).all()  # void pixels are void
    inst = out['pred_instances']
    assert sorted(zip(inst.query_index.tolist(), inst.labels.tolist())) == \
        [(0, 0), (1, 1)]


def test_misspelt_test_cfg_key_is_refused():
    """mmdet's Mask2Former key ``max_per_image`` (or any unknown key) would
    silently keep the default top-k; it is refused with the right name."""
    assert fusion(max_per_img=7, panoptic_on=True).test_cfg['max_per_img'] == 7
    with pytest.raises(ValueError, match="max_per_image.*'max_per_img'"):
        fusion(max_per_image=20)
    with pytest.raises(ValueError, match='objet_mask_thr'):
        fusion(objet_mask_thr=0.3)


def test_panoptic_pixels_go_to_the_surer_mask():
    """Two things of equal class score claim the same middle columns: the
    query whose mask is sure (probability ~1 inside its mask) owns them,
    not the one whose mask is vague (~0.6 everywhere it claims)."""
    head = fusion(panoptic_on=True, instance_on=False, pano_temp=0,
                  object_mask_thr=0.25, iou_thr=0.5)
    masks = torch.full((2, 8, 8), -20.0)
    masks[0, :, 2:6] = 8.0    # sure: columns 2-5
    masks[1, :, :6] = 0.4     # vague: columns 0-5, sigmoid 0.6
    masks[1, :, 2:6] = 8.2    # ... a touch above query 0 in the middle
    cls = torch.full((2, 1), 2.0)
    pan = head.panoptic(cls.sigmoid(), masks.sigmoid(), [True])
    q = pan.query_index[0]
    assert (q[:, 2:6] == 0).all()  # without the quality term: query 1
    assert (q[:, :2] == -1).all()  # query 1 kept 2 of 6 columns: dropped


def test_filter_low_score_false_paints_every_owned_pixel():
    """mmdet's ``filter_low_score``: a kept query's segment is its owned
    pixels inside its binary mask (True, MaskDINO) or every pixel it owns
    (False, mmdet's Mask2Former default), for things and stuff alike; the
    keep test reads the binary mask either way."""
    h, w = 6, 6
    masks = torch.full((1, h, w), -20.0)
    masks[0, :, :3] = 4.0  # binary on the left half
    masks[0, :, 3:] = -1.0  # owned (the only query) but under mask_thr
    cls = torch.full((1, 1), 2.0)
    for thing in (True, False):
        inside = fusion(panoptic_on=True, instance_on=False, pano_temp=0,
                        iou_thr=0.8, filter_low_score=True).panoptic(
                            cls.sigmoid(), masks.sigmoid(), [thing])
        every = fusion(panoptic_on=True, instance_on=False, pano_temp=0,
                       iou_thr=0.8, filter_low_score=False).panoptic(
                           cls.sigmoid(), masks.sigmoid(), [thing])
        void = 1
        assert (inside.sem_seg[0][:, 3:] == void).all()
        assert (inside.sem_seg[0][:, :3] != void).all()
        assert (every.sem_seg[0] != void).all()
        assert (every.query_index[0] == 0).all()

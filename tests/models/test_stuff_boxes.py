"""Mask DINO's decoupled box prediction: with ``decouple_stuff_boxes`` stuff
ground truth has no box matching cost and no box loss; things keep both."""
import copy

import pytest
import torch
from mmengine.structures import InstanceData

from .test_mqformer import batch, build_model, preprocess


def box_cost():
    from mmdet.registry import TASK_UTILS
    from mmdet.utils import register_all_modules

    import mqformer.models  # noqa: F401  (registers ThingBoxCost)
    register_all_modules(init_default_scope=True)
    return TASK_UTILS.build(dict(
        type='ThingBoxCost',
        cost=dict(type='BBoxL1Cost', weight=5.0, box_format='xywh')))


def test_thing_box_cost_gives_stuff_a_constant_column():
    cost = box_cost()
    torch.manual_seed(0)
    pred = InstanceData(bboxes=torch.rand(6, 2).repeat(1, 2) * 32 +
                        torch.tensor([0., 0., 16., 16.]))
    gt = InstanceData(labels=torch.arange(3),
                      bboxes=torch.tensor([[0., 0., 20., 20.],
                                           [0., 0., 64., 64.],
                                           [30., 30., 50., 60.]]))
    meta = dict(img_shape=(64, 64))
    plain = cost.cost(pred, gt, meta)
    assert torch.equal(cost(pred, gt, meta), plain)  # no flags: unchanged
    gt.is_thing = torch.tensor([True, False, True])
    out = cost(pred, gt, meta)
    assert torch.equal(out[:, [0, 2]], plain[:, [0, 2]])
    # the stuff column favours no query: the mean of the thing columns
    assert torch.allclose(out[:, 1], plain[:, [0, 2]].mean().expand(6))
    assert plain[:, 1].std() > 0.05
    gt.is_thing = torch.tensor([False, False, False])
    assert torch.equal(cost(pred, gt, meta), torch.zeros(6, 3))


def match_stuff(decouple):
    """GT 0 (a thing) fits query 1 in every respect; GT 1 (stuff) is best
    matched by query 4 on class and mask, by query 2 on its box."""
    head = build_model('mixed', bbox_head=dict(
        decouple_stuff_boxes=decouple)).bbox_head
    N, T = 6, 2
    cls = torch.full((N, T), -5.0)
    boxes = torch.tensor([[0.5, 0.5, 0.1, 0.1]]).repeat(N, 1)
    masks = torch.full((N, 8, 8), -5.0)
    gt_masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    gt_masks[0, :3, :3] = True
    gt_masks[1] = True
    gt_masks[1, :3, :3] = False
    gt_boxes = torch.tensor([[0., 0., 24., 24.], [0., 0., 64., 64.]])
    cls[1, 0] = 5.0
    boxes[1] = torch.tensor([0.1875, 0.1875, 0.375, 0.375])
    masks[1][gt_masks[0]] = 5.0
    for q in (2, 4):
        cls[q, 1] = 5.0
        masks[q][gt_masks[1]] = 5.0
    masks[2][3:5, 3:5] = -5.0  # query 2's mask misses a hole of the stuff
    boxes[2] = torch.tensor([0.5, 0.5, 1.0, 1.0])  # but its box is exact
    gt = InstanceData(labels=torch.tensor([0, 1]), bboxes=gt_boxes,
                      masks=gt_masks)
    if decouple:
        gt.is_thing = head.gt_is_thing(gt.labels,
                                       dict(text_is_thing=[True, False]))
    meta = dict(img_shape=(64, 64), num_texts=T)
    features = torch.eye(64).reshape(64, 8, 8)
    pos, pos_gt = head._get_targets_single(cls, boxes, masks.flatten(1), gt,
                                           meta, features)
    return dict(zip(pos_gt.tolist(), pos.tolist()))


def test_stuff_is_matched_by_class_and_mask_not_by_box():
    assert match_stuff(decouple=False) == {0: 1, 1: 2}
    assert match_stuff(decouple=True) == {0: 1, 1: 4}


@pytest.mark.parametrize('decouple', [False, True])
def test_stuff_has_no_box_loss(decouple):
    head = build_model('mixed', bbox_head=dict(
        decouple_stuff_boxes=decouple)).bbox_head
    torch.manual_seed(0)
    B, N, T = 2, 5, 3
    cls = torch.randn(B, N, T)
    boxes = torch.rand(B, N, 4) * 0.5 + 0.25
    text_mask = torch.ones(B, T, dtype=torch.bool)
    metas = [dict(img_shape=(64, 64), text_is_thing=[True, False, True]),
             dict(img_shape=(48, 64), text_is_thing=[False, True, True])]
    labels = [torch.tensor([0, 1, 2]), torch.tensor([0, 2])]

    def losses(stuff_box, thing_box):
        gts = []
        for b, lab in enumerate(labels):
            bboxes = torch.tensor([[4., 4., 30., 30.]]).repeat(len(lab), 1)
            gt = InstanceData(labels=lab, bboxes=bboxes)
            if decouple:
                gt.is_thing = head.gt_is_thing(lab, metas[b])
            gts.append(gt)
        gts[0].bboxes[1] = torch.tensor(stuff_box)  # text 1: stuff
        gts[1].bboxes[1] = torch.tensor(thing_box)  # text 2: a thing
        pos = [torch.tensor([0, 3, 4]), torch.tensor([1, 2])]
        pos_gt = [torch.tensor([0, 1, 2]), torch.tensor([0, 1])]
        return head.loss_cls_box(cls, boxes, text_mask, gts, metas, pos,
                                 pos_gt)

    base = losses([0., 0., 64., 64.], [10., 10., 40., 30.])
    new_stuff = losses([0., 30., 64., 64.], [10., 10., 40., 30.])
    new_thing = losses([0., 0., 64., 64.], [0., 0., 20., 48.])
    for k in ('loss_bbox', 'loss_iou'):
        assert torch.allclose(base[k], new_stuff[k]) == decouple, k
        assert not torch.allclose(base[k], new_thing[k]), k


def test_decoupled_model_trains_on_a_panoptic_batch():
    model = build_model('mixed', bbox_head=dict(decouple_stuff_boxes=True))
    data = preprocess(model, batch(num_images=2, sizes=[(96, 128),
                                                         (80, 112)]), True)
    gts, _ = model.bbox_head.preprocess_gt(data['data_samples'])
    for gt, sample in zip(gts, data['data_samples']):
        flags = sample.metainfo['text_is_thing']
        assert gt.is_thing.tolist() == [flags[int(l)] for l in gt.labels]
    assert any((~gt.is_thing).any() for gt in gts)  # stuff in the batch
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    # the assigners' box costs are wrapped, the mask costs are not
    types = [type(c).__name__ for c in model.bbox_head.assigner.match_costs]
    assert types.count('ThingBoxCost') == 2 and 'DiceCost' in types
    assert all(type(c).__name__ != 'DiceCost'
               for c in model.bbox_head.box_assigner.match_costs)


def test_text_is_thing_shorter_than_the_texts_is_an_error():
    model = build_model('mixed', bbox_head=dict(decouple_stuff_boxes=True))
    data = preprocess(model, batch(num_images=1), True)
    sample = copy.deepcopy(data['data_samples'][0])
    sample.set_metainfo(dict(text_is_thing=[True]))
    with pytest.raises(ValueError, match='shapes_0.jpg.*text_is_thing'):
        model.bbox_head.preprocess_gt([sample])


def test_boxes_of_the_wrong_length_are_an_error_naming_the_sample():
    model = build_model('mixed')
    data = preprocess(model, batch(num_images=1), True)
    from mmengine.structures import BaseDataElement
    sample = copy.deepcopy(data['data_samples'][0])
    gt = sample.gt_instances
    # InstanceData refuses it; a custom structure or transform may not
    BaseDataElement.__setattr__(gt, 'bboxes', gt.bboxes[:-1])
    with pytest.raises(ValueError, match='shapes_0.jpg.*boxes for'):
        model.bbox_head.preprocess_gt([sample])


def test_a_sample_without_thing_flags_is_said_once(monkeypatch):
    """No text_is_thing: every text is a thing, and the log says so once,
    naming the sample (panoptic merge and decoupled stuff boxes)."""
    from mqformer.models.heads import mq_fusion_head
    said = []
    monkeypatch.setattr(mq_fusion_head, 'print_log',
                        lambda msg, **kw: said.append(msg))
    monkeypatch.setattr(mq_fusion_head, '_WARNED', set())
    model = build_model('mixed', bbox_head=dict(decouple_stuff_boxes=True))
    data = preprocess(model, batch(num_images=2), True)
    from mmdet.structures import DetDataSample
    samples = []
    for b, s in enumerate(data['data_samples']):
        meta = {k: v for k, v in s.metainfo.items() if k != 'text_is_thing'}
        new = DetDataSample(metainfo=dict(meta, img_path=f'no_flags_{b}.jpg'))
        new.gt_instances = s.gt_instances
        samples.append(new)
    gts, _ = model.bbox_head.preprocess_gt(samples)
    assert all(gt.is_thing.all() for gt in gts)
    assert len(said) == 1 and 'no_flags_' in said[0]
    assert 'text_is_thing' in said[0]
    assert mq_fusion_head.text_is_thing({'text_is_thing': [False]}, 1,
                                        'panoptic') == [False]
    assert mq_fusion_head.text_is_thing({}, 2, 'panoptic') == [True, True]
    assert len(said) == 2  # once per place

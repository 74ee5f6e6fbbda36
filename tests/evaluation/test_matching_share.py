"""How the joint Hungarian matching shares the ground truth between the
query types (the query ablation's mechanism study): a constructed
assignment with a known answer, and a real model's last-layer matching
over a padded batch, every ground truth counted once."""
import torch

from mqformer.evaluation.matching_share import MatchingShare, record_matching
from mqformer.models.layers import QuerySplit
from models.test_mqformer import batch, build_model, preprocess


def test_share_of_a_known_assignment():
    """4 conditional + 2 learnable queries; ground truth 0-2 things, 3-4
    stuff, 5 a thing left unmatched. Things: 2 of 3 to conditional; stuff:
    1 of 2 to learnable."""
    split = QuerySplit(num_dn=7, num_conditional=4, num_learnable=2)
    is_thing = torch.tensor([True, True, True, False, False, True])
    pos = torch.tensor([0, 3, 4, 1, 5])  # indices among the matching queries
    pos_gt = torch.tensor([0, 1, 2, 3, 4])
    share = MatchingShare()
    share.update(pos, pos_gt, is_thing, split)
    out = share.compute()
    assert out['things matched to conditional %'] == round(200 / 3, 2)
    assert out['stuff matched to learnable %'] == 50.0
    assert (out['thing matched'], out['stuff matched']) == (3, 2)
    assert (out['thing unmatched'], out['stuff unmatched']) == (1, 0)
    empty = MatchingShare().compute()
    assert empty['things matched to conditional %'] is None


def test_a_model_matching_counts_every_ground_truth_once():
    model = build_model('mixed').eval()
    data = preprocess(model, batch(sizes=((64, 96), (128, 128))), True)
    share = MatchingShare()
    record_matching(model, share, data['inputs'], data['data_samples'])
    out = share.compute()
    samples = data['data_samples']
    things = sum(int(torch.as_tensor(s.text_is_thing)[
        s.gt_instances.labels].sum()) for s in samples)
    total = sum(len(s.gt_instances) for s in samples)
    assert out['thing matched'] + out['thing unmatched'] == things > 0
    assert out['stuff matched'] + out['stuff unmatched'] == \
        total - things > 0
    # 30 queries, a handful of segments: everything is matched
    assert out['thing unmatched'] == out['stuff unmatched'] == 0
    assert 0 <= out['things matched to conditional %'] <= 100
    # the head's own methods are back
    assert 'loss' not in vars(model.bbox_head)
    assert 'get_targets' not in vars(model.bbox_head)


def test_evaluation_ground_truth_is_brought_to_the_input_scale():
    """Evaluation pipelines load the ground truth at the original size;
    matching reads it at the resized input's (masks and boxes)."""
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    from mqformer.evaluation.matching_share import to_input_scale
    m = np.zeros((1, 80, 120), dtype=np.uint8)
    m[0, 20:40, 60:100] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(40, 60)))
    sample.gt_instances = InstanceData(
        labels=torch.tensor([0]), masks=BitmapMasks(m, 80, 120),
        bboxes=HorizontalBoxes(torch.tensor([[60., 20., 100., 40.]])))
    to_input_scale(sample)
    gt = sample.gt_instances
    assert (gt.masks.height, gt.masks.width) == (40, 60)
    ys, xs = np.nonzero(gt.masks.masks[0])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10, 19, 30, 49)
    assert gt.bboxes.tensor.tolist() == [[30., 10., 50., 20.]]

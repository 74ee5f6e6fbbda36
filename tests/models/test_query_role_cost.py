"""QueryRoleCost: the Hungarian matching gives stuff to the learnable
queries in mixed sets, and leaves single-type sets as they were."""
import os.path as osp

import torch
from mmengine.structures import InstanceData

from .test_mqformer import batch, build_model, preprocess

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ROLEMATCH_CFG = osp.join(REPO, 'configs', 'mqformer',
                         'mqformer_tiny_shapes-panoptic_rolematch.py')


def build(cfg):
    from mmdet.registry import TASK_UTILS
    from mmdet.utils import register_all_modules

    import mqformer.models  # noqa: F401  (registers QueryRoleCost)
    register_all_modules(init_default_scope=True)
    return TASK_UTILS.build(cfg)


def test_cost_is_the_weight_for_a_conditional_query_on_stuff():
    cost = build(dict(type='QueryRoleCost', weight=7.0))
    pred = InstanceData(scores=torch.zeros(4, 3),
                        is_learnable=torch.tensor([False, False, True, True]))
    gt = InstanceData(labels=torch.tensor([0, 1, 2]),
                      is_thing=torch.tensor([True, False, True]))
    expected = torch.zeros(4, 3)
    expected[:2, 1] = 7.0
    assert torch.equal(cost(pred, gt), expected)
    # without either flag it is no cost at all
    assert torch.equal(cost(InstanceData(scores=torch.zeros(4, 3)), gt),
                       torch.zeros(4, 3))
    gt_plain = InstanceData(labels=torch.tensor([0, 1, 2]))
    assert torch.equal(cost(pred, gt_plain), torch.zeros(4, 3))


def assign(with_role, is_learnable):
    """Query 0 (conditional) is the best class match for the stuff GT 1,
    query 2 the second best; query 1 fits the thing GT 0."""
    costs = [dict(type='FocalLossCost', weight=4.0)]
    if with_role:
        costs.append(dict(type='QueryRoleCost', weight=100.0))
    assigner = build(dict(type='HungarianAssigner', match_costs=costs))
    scores = torch.full((4, 2), -4.0)
    scores[1, 0] = 4.0
    scores[0, 1] = 4.0
    scores[2, 1] = 1.0
    pred = InstanceData(scores=scores, is_learnable=is_learnable)
    gt = InstanceData(labels=torch.tensor([0, 1]),
                      is_thing=torch.tensor([True, False]))
    result = assigner.assign(pred, gt, img_meta=dict(img_shape=(32, 32)))
    pos = torch.nonzero(result.gt_inds > 0).squeeze(-1)
    return dict(zip((result.gt_inds[pos] - 1).tolist(), pos.tolist()))


def test_stuff_goes_to_a_learnable_query_in_a_mixed_set_only():
    mixed = torch.tensor([False, False, True, True])
    assert assign(False, mixed) == {0: 1, 1: 0}
    assert assign(True, mixed) == {0: 1, 1: 2}  # stuff to learnable
    # one query type: the same constant on every row of the stuff column
    for single in (torch.zeros(4, dtype=torch.bool),
                   torch.ones(4, dtype=torch.bool)):
        assert assign(True, single) == assign(False, single) == {0: 1, 1: 0}


def matched_stuff_types(model, data):
    """(query is learnable) for every stuff GT match of the decoder sets in
    one training step."""
    head = model.bbox_head
    types, get_targets = [], head.get_targets

    def recording(pred_sets, gts, metas, mask_features):
        out = get_targets(pred_sets, gts, metas, mask_features)
        for s, (pos, pos_gt) in zip(pred_sets, out):
            if s.is_learnable is None:  # the encoder proposals
                continue
            for b, (p, g) in enumerate(zip(pos, pos_gt)):
                flags = metas[b]['text_is_thing']
                stuff = torch.tensor([not flags[int(l)]
                                      for l in gts[b].labels[g]],
                                     dtype=torch.bool)
                types.extend(s.is_learnable[p][stuff].tolist())
        return out

    head.get_targets = recording
    losses = model.loss(data['inputs'], data['data_samples'])
    del head.get_targets
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    return types


def test_the_rolematch_model_matches_every_stuff_segment_to_a_learnable_query():
    from mmengine.config import Config
    train_cfg = Config.fromfile(ROLEMATCH_CFG).model.train_cfg.to_dict()
    assert train_cfg['assigner']['match_costs'][-1]['type'] == 'QueryRoleCost'
    samples = batch(num_images=2, sizes=[(96, 128), (80, 112)])
    plain = build_model('mixed')
    role = build_model('mixed', train_cfg=train_cfg)
    assert role.bbox_head.needs_is_thing and not plain.bbox_head.needs_is_thing
    got = matched_stuff_types(role, preprocess(role, samples, True))
    assert got and all(got)
    # the same model and batch without the cost gives stuff to conditional
    # queries too, so the test above sees the cost
    assert not all(matched_stuff_types(plain, preprocess(plain, samples,
                                                         True)))

"""MQ-Former model: shapes, dual-query attention, joint matching, gradients,
denoising, reuse by config."""
import copy

import pytest
import torch

from conftest import REPO, tiny_cfg


def build_model(query_mode='mixed', dn=True, text_encoder='tiny', **overrides):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = tiny_cfg(text_encoder=text_encoder)
    cfg.model.query_mode = query_mode
    if not dn:
        cfg.model.dn_cfg = None
    if 'dqs_cfg' in overrides:  # replaced, not merged into the config's
        cfg.model.dqs_cfg = overrides.pop('dqs_cfg')
    cfg.model.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def batch(seed=0, **kwargs):
    from mqformer.testing import ShapesWorld, make_batch
    return make_batch(ShapesWorld(seed=seed), **kwargs)


def preprocess(model, data, training):
    return model.data_preprocessor(copy.deepcopy(data), training)


@pytest.mark.parametrize('mode,n_queries', [('mixed', 30), ('learnable', 10),
                                            ('conditional', 20)])
def test_output_shapes_every_query_mode(mode, n_queries):
    model = build_model(mode).eval()
    data = preprocess(model, batch(extra_texts=(0, 5)), False)
    n_texts = [len(s.texts) for s in data['data_samples']]
    assert n_texts[0] != n_texts[1]
    with torch.no_grad():
        cls, boxes, masks = model._forward(data['inputs'], data['data_samples'])
        results = model.predict(data['inputs'], data['data_samples'])
    L = model.decoder.num_layers + 1
    B, _, H, W = data['inputs'].shape
    assert cls.shape == (L, 2, n_queries, max(n_texts))
    assert boxes.shape == (L, 2, n_queries, 4)
    assert masks.shape == (L, 2, n_queries, H // 4, W // 4)
    for res, n in zip(results, n_texts):
        inst = res.pred_instances
        assert inst.masks.shape[1:] == res.ori_shape
        h, w = res.ori_shape  # boxes in the image's own pixels
        assert (inst.bboxes[:, 2] <= w).all() and (inst.bboxes[:, 3] <= h).all()
        assert inst.labels.max() < n  # labels index the image's own texts
        assert len(inst) == min(model.bbox_head.test_cfg['max_per_img'],
                                n_queries * n)


def _layer(with_dual):
    from mmdet.registry import MODELS
    cfg = dict(tiny_cfg().model.decoder.layer_cfg)
    if not with_dual:
        cfg['dual_attn_cfg'] = None
    torch.manual_seed(0)
    return MODELS.build(dict(type='MixedQueryDecoderLayer', **cfg)).eval()


@pytest.mark.parametrize('mode', ['mixed', 'learnable', 'conditional'])
def test_dual_query_cross_attention_connects_the_sets(mode):
    """Perturb the last 4 queries (the learnable ones in mixed mode).
    Self-attention between the two groups is blocked, so only dual-query
    cross-attention can carry the change to the first 6 queries."""
    layer = _layer(with_dual=mode == 'mixed')
    from mqformer.models.layers import QuerySplit
    split = QuerySplit(*dict(mixed=(0, 6, 4), conditional=(0, 10, 0),
                             learnable=(0, 0, 10))[mode])
    C, B, N = layer.embed_dims, 1, 10
    torch.manual_seed(1)
    query, pos = torch.randn(B, N, C), torch.randn(B, N, C)
    block = torch.zeros(N, N, dtype=torch.bool)
    block[:6, 6:] = block[6:, :6] = True
    shapes = torch.tensor([[4, 4], [2, 2], [1, 1]])
    kw = dict(value=torch.randn(B, 21, C), query_split=split,
              self_attn_mask=block, spatial_shapes=shapes,
              level_start_index=torch.tensor([0, 16, 20]),
              valid_ratios=torch.ones(B, 3, 2),
              reference_points=torch.rand(B, N, 3, 4))
    with torch.no_grad():
        out = layer(query, pos, **kw)
        q2 = query.clone()
        q2[:, 6:] += torch.randn(B, 4, C)
        out2 = layer(q2, pos, **kw)
    moved = (out[:, :6] - out2[:, :6]).abs().max().item()
    assert (moved > 1e-4) == (mode == 'mixed'), moved


@pytest.mark.parametrize('mode', ['learnable', 'conditional'])
def test_single_type_modes_build_no_dual_block(mode):
    model = build_model(mode)
    assert not any(hasattr(l, 'c2l_attn') for l in model.decoder.layers)
    assert all(l.c2l_attn is not None
               for l in build_model('mixed').decoder.layers)


def test_mixed_model_routes_dual_attention_between_query_sets():
    """In the whole model: learnable queries reach the conditional queries'
    outputs in mixed mode through the dual block (its modules get gradients)."""
    model = build_model('mixed').train()
    data = preprocess(model, batch(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    layer = model.decoder.layers[0]
    assert layer.c2l_attn.attn.in_proj_weight.grad.abs().sum() > 0
    assert layer.l2c_attn.attn.in_proj_weight.grad.abs().sum() > 0


def test_joint_matching_across_query_types():
    """One GT is best matched by a learnable query, the other by a conditional
    query: the assigner, run over all queries jointly, picks both."""
    from mmengine.structures import InstanceData
    model = build_model('mixed')
    head = model.bbox_head
    n_c, n_l, T = 20, 10, 3
    N = n_c + n_l
    cls = torch.full((N, T), -5.0)
    boxes = torch.full((N, 4), 0.5)
    boxes[:, 2:] = 0.05
    masks = torch.full((N, 8, 8), -5.0)
    gt_boxes = torch.tensor([[0., 0., 32., 32.], [32., 32., 64., 64.]])
    gt_masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    gt_masks[0, :4, :4] = True
    gt_masks[1, 4:, 4:] = True
    # query 25 (learnable) fits GT 0, query 3 (conditional) fits GT 1
    for q, g, lab in ((25, 0, 2), (3, 1, 0)):
        cls[q, lab] = 5.0
        boxes[q] = torch.tensor([0.25, 0.25, 0.5, 0.5]) if g == 0 else \
            torch.tensor([0.75, 0.75, 0.5, 0.5])
        masks[q][gt_masks[g]] = 5.0
    gt = InstanceData(labels=torch.tensor([2, 0]), bboxes=gt_boxes,
                      masks=gt_masks)
    meta = dict(img_shape=(64, 64), num_texts=T)
    # masks = embeddings x features: one-hot pixel features give them exactly
    features = torch.eye(64).reshape(64, 8, 8)
    pos, pos_gt = head._get_targets_single(cls, boxes, masks.flatten(1), gt,
                                           meta, features)
    assigned = dict(zip(pos_gt.tolist(), pos.tolist()))
    assert assigned == {0: 25, 1: 3}
    assert assigned[0] >= n_c > assigned[1]  # one learnable, one conditional


def test_matching_on_sampled_features_equals_matching_on_full_masks():
    """Training never builds every query's mask: matching samples the mask
    features at the random points. It assigns exactly as Mask2Former-style
    matching on the full (N, h, w) masks sampled at the same points."""
    from mmcv.ops import point_sample
    from mmengine.structures import InstanceData
    head = build_model('mixed').bbox_head
    torch.manual_seed(0)
    N, T, C = 30, 4, 16
    cls, boxes = torch.randn(N, T), torch.rand(N, 4) * 0.5 + 0.25
    embed, feat = torch.randn(N, C), torch.randn(C, 12, 10)
    gt_masks = torch.rand(3, 48, 40) > 0.6
    gt = InstanceData(labels=torch.tensor([0, 3, 1]),
                      bboxes=torch.tensor([[0., 0., 20., 30.],
                                           [10., 5., 40., 40.],
                                           [5., 20., 30., 48.]]),
                      masks=gt_masks)
    meta = dict(img_shape=(48, 40), num_texts=T)
    torch.manual_seed(1)
    pos, pos_gt = head._get_targets_single(cls, boxes, embed, gt, meta, feat)
    torch.manual_seed(1)
    points = torch.rand((1, head.num_points, 2))
    full = torch.einsum('nc,chw->nhw', embed, feat)
    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    pred = InstanceData(
        scores=cls, bboxes=bbox_cxcywh_to_xyxy(boxes) *
        torch.tensor([40., 48., 40., 48.]),
        masks=point_sample(full[:, None], points.repeat(N, 1, 1))[:, 0])
    ref_gt = InstanceData(
        labels=gt.labels, bboxes=gt.bboxes,
        masks=point_sample(gt_masks[:, None].float(),
                           points.repeat(3, 1, 1))[:, 0])
    ref = head.assigner.assign(pred, ref_gt, img_meta=meta)
    ref_pos = torch.nonzero(ref.gt_inds > 0).squeeze(-1)
    assert len(pos) == 3
    assert torch.equal(pos, ref_pos)
    assert torch.equal(pos_gt, ref.gt_inds[ref_pos] - 1)


def test_binary_cross_entropy_cost_equals_mmdets():
    """Our mask BCE match cost has mmdet's CrossEntropyLossCost value (soft
    point-sampled targets, extreme logits, weight) and is what the model
    configs match with."""
    from mmengine.config import Config
    from mmengine.structures import InstanceData
    from mmdet.registry import TASK_UTILS
    torch.manual_seed(0)
    x = torch.randn(40, 1, 300) * 6
    x[0, 0, :5] = torch.tensor([-80., -30., 0., 30., 80.])
    t = torch.rand(7, 300)
    t[:, :150] = (t[:, :150] > 0.5).float()  # hard and soft targets
    pred, gt = InstanceData(masks=x), InstanceData(masks=t)
    ours = TASK_UTILS.build(dict(type='BinaryCrossEntropyLossCost',
                                 weight=5.0))(pred, gt)
    ref = TASK_UTILS.build(dict(type='CrossEntropyLossCost', weight=5.0,
                                use_sigmoid=True))(pred, gt)
    assert ours.shape == (40, 7)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    cfg = Config.fromfile(f'{REPO}/configs/_base_/models/mqformer_r50.py')
    types = [c['type'] for c in cfg.model.train_cfg.assigner.match_costs]
    assert 'BinaryCrossEntropyLossCost' in types
    head = build_model('mixed').bbox_head
    box_types = [type(c).__name__ for c in head.box_assigner.match_costs]
    assert box_types == ['FocalLossCost', 'BBoxL1Cost', 'IoUCost']


def test_distinct_query_selection_skips_duplicate_proposals():
    """With ``dqs_cfg`` type ``'nms'`` (boxes) a stuff-like area proposed by
    many tokens gives one conditional query, not a copy per token; the count
    stays N_c (suppressed proposals fill in, best first, before padding);
    without it the top-k is DINO's."""
    from mmengine.config import Config
    from mmdet.models.layers.transformer.utils import inverse_sigmoid
    r50 = Config.fromfile(f'{REPO}/configs/_base_/models/mqformer_r50.py')
    assert r50.model.get('dqs_cfg') is None  # off in the R50 configs
    # on in the demo's tiny model (docs/quality_per_cpu_minute.md)
    assert build_model('mixed').dqs_cfg['type'] == 'mask_nms'
    model = build_model('mixed', dqs_cfg=dict(type='nms', iou_threshold=0.8))
    k = model.num_conditional  # 20
    S, T = 300, 3
    g = torch.Generator().manual_seed(0)
    # 40 near-copies of one large box (the highest scores), then small
    # boxes, each distinct, scored lower; the last 10 tokens are padding
    big = torch.tensor([0.5, 0.5, 0.8, 0.6]) + 0.005 * torch.rand(40, 4,
                                                                   generator=g)
    centres = torch.rand(S - 40, 2, generator=g) * 0.8 + 0.1
    small = torch.cat([centres, torch.full((S - 40, 2), 0.02)], 1)
    coord = inverse_sigmoid(torch.cat([big, small]))[None]
    enc_class = torch.randn(1, S, T, generator=g) - 5
    enc_class[0, :40, 1] = 5 + torch.rand(40, generator=g)
    enc_class[0, 40:, 0] = torch.linspace(3, 0, S - 40)
    text_mask = torch.ones(1, T, dtype=torch.bool)
    proposals = torch.zeros(1, S, 4)
    proposals[0, -10:] = float('inf')  # padding / border
    model.dqs_cfg = None
    plain = model.topk_proposals(enc_class, text_mask, proposals)
    assert (plain < 40).all()  # DINO's top-k: all copies of the big box
    model.dqs_cfg = dict(type='nms', iou_threshold=0.8)
    with pytest.raises(ValueError, match='enc_coord_unact'):
        model.topk_proposals(enc_class, text_mask, proposals)
    picked = model.topk_proposals(enc_class, text_mask, proposals, coord)[0]
    assert picked.shape == (k, ) and len(picked.unique()) == k
    assert (picked < 40).sum() == 1
    assert picked[0] == enc_class[0, :40, 1].argmax()  # best copy first
    assert torch.equal(picked[1:], torch.arange(40, 40 + k - 1))
    # every small box is one box: nothing survives but the big one and the
    # best small one, the rest are filled by score, never from padding
    coord[0, 40:] = inverse_sigmoid(small[:1]).expand(S - 40, -1)
    picked = model.topk_proposals(enc_class, text_mask, proposals, coord)[0]
    assert len(picked.unique()) == k and (picked < S - 10).all()
    assert set(picked[:2].tolist()) == {int(enc_class[0, :40, 1].argmax()),
                                        40}
    model.dqs_cfg = None
    assert torch.equal(
        model.topk_proposals(enc_class, text_mask, proposals, coord), plain)


def test_mask_nms_is_fast_nms():
    """YOLACT's Fast NMS on masks: a mask overlapping a better-ranked one by
    more than the threshold is dropped, even where that one was dropped too;
    empty masks overlap nothing."""
    from mqformer.models.detectors import MQFormer
    m = torch.full((5, 10, 10), -1.0)
    m[0, :, :5] = 1  # A: left half (50 px)
    m[1, :, :5] = 1
    m[1, 0, 5] = 1  # A': A plus one pixel (IoU 50/51)
    m[2, :, 5:] = 1  # B: right half, disjoint from A
    m[3, :, 5:] = 1
    m[3, :3, 4] = 1  # B': B plus 3 pixels (IoU 50/53 = 0.94)
    # m[4] is empty
    def kept(masks, thr):
        return torch.nonzero(MQFormer.mask_nms(masks, thr)).flatten().tolist()

    assert kept(m, 0.8) == [0, 2, 4]
    assert kept(m, 0.99) == [0, 1, 2, 3, 4]
    # a chain: C overlaps B (dropped by A: IoU 0.83) by 0.83, A by 0.67;
    # Fast NMS drops it too
    chain = torch.full((3, 10, 10), -1.0)
    chain[0, :, :5] = 1
    chain[1, :, :6] = 1
    chain[2, :, 1:6] = 1
    chain[2, :, 0] = -1
    assert kept(chain, 0.8) == [0]
    assert kept(torch.zeros(0, 10, 10), 0.8) == []  # no candidates


def test_mask_nms_prefix_equals_fast_nms():
    """The block-wise Fast NMS over a batch, stopping once every image has k
    survivors (or has no valid candidate left), keeps each image's first k
    survivors of its full Fast NMS (so distinct selection picks the same
    queries), reads fewer candidates when enough survive, all of them when
    too few do, and never keeps an invalid (-inf) candidate."""
    from mqformer.models.detectors import MQFormer
    g = torch.Generator().manual_seed(0)
    base = torch.randn(12, 8, 8, generator=g)
    # 2 images x 60 candidates: image 0's all different (done early),
    # image 1's 12 regions, each repeated with small perturbations, and its
    # last 25 candidates invalid
    masks = base[torch.randint(0, 12, (2, 60), generator=g)] + \
        0.3 * torch.randn(2, 60, 8, 8, generator=g)
    masks[0] = torch.randn(60, 8, 8, generator=g)
    idx = torch.arange(60).repeat(2, 1)
    valid = torch.ones(2, 60, dtype=torch.bool)
    valid[1, 35:] = False
    full = [MQFormer.mask_nms(masks[0], 0.6),
            MQFormer.mask_nms(masks[1, :35], 0.6)]
    assert torch.equal(MQFormer.mask_nms(masks, 0.6)[0], full[0])  # batched
    alone = 0  # calls for one image after the other was done
    for k in (1, 3, 5, 8, 30):
        read = []

        def masks_of(i, rows):
            read.append(i.shape)
            return masks[rows[:, None], i]
        keep = MQFormer.mask_nms_prefix(masks_of, idx, valid, 0.6, k)
        assert not keep[1, 35:].any()
        lasts = []
        for b in range(2):
            first = torch.nonzero(full[b]).flatten()[:k]
            assert torch.equal(torch.nonzero(keep[b]).flatten()[:k], first)
            assert not keep[b, :int(first[-1]) + 1].logical_xor(
                full[b][:int(first[-1]) + 1]).any()
            lasts.append(int(first[-1]) if int(full[b].sum()) >= k else
                         int(valid[b].sum()) - 1)
        # blocks of k, k, 2k, 4k, ..., each image until it is done
        ends = [k * 2**i for i in range(8)]
        assert sum(r.numel() for r in read) == sum(
            min(60, next(e for e in ends if e > last)) for last in lasts)
        assert [r[1] for r in read[:2]] == [k, k][:len(read)]
        alone += sum(r[0] == 1 for r in read)
    assert alone > 0  # image 1 read on alone
    assert int(full[1].sum()) < 30  # k = 30: image 1 read everything


def test_batched_distinct_selection_equals_the_per_image_one():
    """Distinct selection over the batch picks, for each image, the queries
    of the per-image rule: the k best survivors of the full Fast NMS (or box
    NMS) of its valid top candidates, then its best suppressed ones."""
    model = build_model('mixed', dqs_cfg=dict(type='mask_nms',
                                               iou_threshold=0.7,
                                               nms_pre_ratio=4))
    k = model.num_conditional
    B, S, T = 3, 200, 4
    g = torch.Generator().manual_seed(1)
    enc_class = torch.randn(B, S, T, generator=g)
    text_mask = torch.ones(B, T, dtype=torch.bool)
    text_mask[2, 3] = False
    proposals = torch.zeros(B, S, 4)
    proposals[1, 50:] = float('inf')  # image 1: 50 valid proposals
    base = torch.randn(15, 6, 6, generator=g)
    masks = base[torch.randint(0, 15, (B, S), generator=g)] + \
        0.4 * torch.randn(B, S, 6, 6, generator=g)
    masks[0] = base[0]  # image 0: every proposal the same mask
    picked = model.topk_proposals(
        enc_class, text_mask, proposals,
        candidate_masks=lambda i, rows: masks[rows[:, None], i])
    scores = enc_class.masked_fill(~text_mask[:, None], -1e4).max(-1)[0]
    scores = scores.masked_fill(torch.isinf(proposals).any(-1),
                                float('-inf'))
    for b in range(B):
        cand_scores, cand = scores[b].topk(4 * k)
        cand = cand[torch.isfinite(cand_scores)]
        keep = model.mask_nms(masks[b, cand], 0.7)
        probs = scores[b, cand].sigmoid()
        rank = scores[b].sigmoid() - 2
        rank[cand] = torch.where(keep, probs + 2, probs)
        assert torch.equal(picked[b], rank.topk(k)[1])
    assert (picked[1] < 50).all() and len(picked[0].unique()) == k
    # box NMS: one batched_nms call for all images, the same per image
    from mmcv.ops import batched_nms

    from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
    model.dqs_cfg = dict(type='nms', iou_threshold=0.5, nms_pre_ratio=4)
    coord = torch.randn(B, S, 4, generator=g)
    coord[0, :, :2] = 0.0  # image 0: every box the same centre
    picked = model.topk_proposals(enc_class, text_mask, proposals, coord)
    boxes = bbox_cxcywh_to_xyxy(coord.sigmoid())
    for b in range(B):
        cand_scores, cand = scores[b].topk(4 * k)
        cand = cand[torch.isfinite(cand_scores)]
        probs = scores[b, cand].sigmoid()
        kept = batched_nms(boxes[b, cand], probs, torch.zeros_like(cand),
                           dict(type='nms', iou_threshold=0.5))[1]
        keep = torch.zeros(len(cand), dtype=torch.bool)
        keep[kept] = True
        rank = scores[b].sigmoid() - 2
        rank[cand] = torch.where(keep, probs + 2, probs)
        assert torch.equal(picked[b], rank.topk(k)[1])


def test_mask_distinct_selection_skips_duplicate_masks():
    """``dqs_cfg=dict(type='mask_nms')``: tokens of one region that all
    predict the same mask give one conditional query; distinct masks are
    kept by score; the count stays N_c and padding never qualifies."""
    model = build_model('mixed', dqs_cfg=dict(type='mask_nms',
                                               iou_threshold=0.8))
    k = model.num_conditional  # 20
    S, T = 300, 3
    g = torch.Generator().manual_seed(0)
    enc_class = torch.randn(1, S, T, generator=g) - 5
    enc_class[0, :40, 1] = 5 + torch.rand(40, generator=g)  # one big region
    enc_class[0, 40:, 0] = torch.linspace(3, 0, S - 40)
    text_mask = torch.ones(1, T, dtype=torch.bool)
    proposals = torch.zeros(1, S, 4)
    proposals[0, -10:] = float('inf')  # padding / border
    masks = torch.full((S, 20, 30), -1.0)
    masks[:40, :, :10] = 1  # every token of the region: the left third
    for i in range(40, S):  # the others: one pixel each, all different
        masks[i, (i - 40) // 20, 10 + (i - 40) % 20] = 1
    asked = []

    def candidate_masks(idx, rows):
        asked.append(idx.shape[1])
        return masks[idx]

    picked = model.topk_proposals(enc_class, text_mask, proposals,
                                  candidate_masks=candidate_masks)[0]
    # of the nms_pre_ratio x N_c = 4k candidates, blocks of k, k, 2k are
    # read until k survive: the 40 region tokens give 1, the third block
    # the rest
    assert asked == [k, k, 2 * k]
    assert picked.shape == (k, ) and len(picked.unique()) == k
    assert (picked < 40).sum() == 1
    assert picked[0] == enc_class[0, :40, 1].argmax()
    assert torch.equal(picked[1:], torch.arange(40, 40 + k - 1))
    # all masks alike: one survivor, the rest filled by score, no padding
    masks[:] = 1
    asked.clear()
    picked = model.topk_proposals(enc_class, text_mask, proposals,
                                  candidate_masks=candidate_masks)[0]
    assert asked == [k, k, 2 * k]  # never k survivors: all 4k read
    assert len(picked.unique()) == k and (picked < S - 10).all()
    with pytest.raises(ValueError, match='candidate_masks'):
        model.topk_proposals(enc_class, text_mask, proposals)


def test_proposal_masks_stop_at_the_valid_area():
    """Candidate masks for distinct selection are resized to ``mask_size``
    and -inf outside the image's share of the padded input."""
    model = build_model('mixed', dqs_cfg=dict(type='mask_nms', mask_size=8))
    C = model.embed_dims
    feats = model.proposal_mask_features(torch.randn(2, C, 32, 24))
    assert feats.shape == (2, C, 8, 8)
    masks = model.proposal_masks(torch.randn(2, 5, C), feats,
                                 torch.tensor([[0.5, 1.0], [1.0, 0.25]]))
    assert masks.shape == (2, 5, 8, 8)
    assert torch.isinf(masks[0, :, 4:]).all()
    assert torch.isfinite(masks[0, :, :4]).all()
    assert torch.isinf(masks[1, :, :, 2:]).all()
    assert torch.isfinite(masks[1, :, :, :2]).all()


@pytest.mark.parametrize('dqs', ['nms', 'mask_nms'])
def test_distinct_selection_trains_and_predicts_on_padded_batches(dqs):
    """Both selections run inside the model on a batch of differently sized
    images: finite losses in training, N_c conditional queries at test."""
    model = build_model('mixed', dqs_cfg=dict(type=dqs, iou_threshold=0.8))
    data = preprocess(model.train(), batch(sizes=((64, 96), (128, 128))),
                      True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert all(torch.isfinite(v).all() for v in losses.values())
    data = preprocess(model.eval(), batch(sizes=((64, 96), (128, 128))),
                      False)
    with torch.no_grad():
        cls = model._forward(data['inputs'], data['data_samples'])[0]
    assert cls.shape[2] == model.num_conditional + model.num_learnable


def test_gradients_reach_every_part():
    model = build_model('mixed').train()
    data = preprocess(model, batch(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    for k in ('loss_cls', 'loss_bbox', 'loss_iou', 'loss_mask', 'loss_dice',
              'd0.loss_cls', 'enc_loss_cls', 'dn_loss_bbox', 'd1.dn_loss_mask'):
        assert k in losses, k
        assert torch.isfinite(losses[k]), k
    sum(v for k, v in losses.items() if 'loss' in k).backward()

    def grad(params):
        return sum(p.grad.abs().sum().item() for p in params
                   if p.grad is not None)

    assert grad(model.backbone.parameters()) > 0
    assert grad(model.encoder.parameters()) > 0
    assert grad(model.learnable_query.parameters()) > 0
    assert grad(model.learnable_reference.parameters()) > 0
    # conditional queries come from the encoder proposals
    assert grad(model.memory_trans_fc.parameters()) > 0
    assert grad(model.text_proj.parameters()) > 0
    assert grad(model.text_encoder.parameters()) > 0  # tiny one is not frozen


@pytest.mark.parametrize('mode', ['mixed', 'learnable', 'conditional'])
@pytest.mark.parametrize('with_mask', [True, False])
def test_every_parameter_takes_part_in_every_step(mode, with_mask):
    """DDP (find_unused_parameters=False) stops on a parameter without a
    gradient: the learnable mode's proposal branch, the mask branches on a
    rank whose batch has no masks, a trained BERT's pooler."""
    model = build_model(mode).train()
    data = preprocess(model, batch(with_mask=with_mask), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    unused = [n for n, p in model.named_parameters()
              if p.requires_grad and p.grad is None]
    assert unused == []
    assert len(model.bbox_head.reg_branches) == \
        model.decoder.num_layers + (mode != 'learnable')


@pytest.mark.parametrize('mode', ['mixed', 'learnable', 'conditional'])
def test_loss_falls_overfitting_one_image(mode):
    model = build_model(mode).train()
    data = batch(num_images=1, extra_texts=(2, ))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    totals = []
    for _ in range(30):
        d = preprocess(model, data, True)
        losses = model.loss(d['inputs'], d['data_samples'])
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
        totals.append(loss.item())
    first, last = sum(totals[:5]) / 5, sum(totals[-5:]) / 5
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize('dn', [True, False])
def test_denoising_on_and_off_train_and_never_predict(dn):
    model = build_model('mixed', dn=dn).train()
    data = preprocess(model, batch(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert any(k.startswith('dn_') for k in losses) == dn
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    model.eval()
    data = preprocess(model, batch(), False)
    with torch.no_grad():
        cls, _, _ = model._forward(data['inputs'], data['data_samples'])
    assert cls.shape[2] == model.num_queries  # no denoising queries at test


@pytest.mark.parametrize('case', ['no_objects', 'one_text', 'many_texts',
                                  'all_negative', 'no_masks'])
def test_trains_on_edge_cases(case):
    kwargs = dict(num_images=2)
    if case == 'no_objects':
        kwargs.update(empty=(True, True))
    elif case == 'one_text':
        kwargs.update(extra_texts=(0, ), with_stuff=False)
    elif case == 'many_texts':
        kwargs.update(extra_texts=(100, ))
    elif case == 'all_negative':
        kwargs.update(empty=(True, False))
    elif case == 'no_masks':
        kwargs.update(with_mask=False)
    from mqformer.testing import ShapesWorld, make_batch
    world = ShapesWorld(seed=3, max_objects=1)
    data = make_batch(world, **kwargs)
    if case == 'many_texts':
        for s in data['data_samples']:
            s.set_metainfo(dict(texts=list(s.texts) +
                                [f'thing number {i}' for i in range(300)]))
        assert len(data['data_samples'][0].texts) > 300
    if case == 'one_text':
        for s in data['data_samples']:
            keep = s.gt_instances.labels == 0
            s.gt_instances = s.gt_instances[keep]
            s.set_metainfo(dict(texts=list(s.texts)[:1]))
        assert len(data['data_samples'][0].texts) == 1
    model = build_model('mixed').train()
    d = preprocess(model, data, True)
    losses = model.loss(d['inputs'], d['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    if case == 'no_masks':
        assert losses['loss_mask'].item() == 0
    assert model.bbox_head.cls_embed.weight.grad is not None


def test_an_input_with_fewer_proposals_than_conditional_queries():
    """A 16 x 16 image has fewer valid encoder proposals than the 20
    conditional queries: no padding or border proposal (-inf) is selected,
    the layout (QuerySplit) says how many conditional queries there are,
    and the predictions' query types follow it."""
    model = build_model('mixed').eval()
    data = preprocess(model, batch(size=(16, 16)), False)
    picked = {}
    topk = model.topk_proposals

    def spy(enc_class, text_mask, output_proposals, *args, **kwargs):
        idx = topk(enc_class, text_mask, output_proposals, *args, **kwargs)
        picked['valid'] = torch.isfinite(output_proposals).all(-1)
        picked['idx'] = idx
        return idx
    model.topk_proposals = spy
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
    valid, idx = picked['valid'], picked['idx']
    n_valid = int(valid.sum(1).min())
    assert n_valid < model.num_conditional  # the case under test
    assert idx.shape == (2, n_valid)
    assert torch.gather(valid, 1, idx).all()
    for res in results:
        assert res.metainfo['num_conditional_queries'] == n_valid
        inst = res.pred_instances
        assert torch.equal(inst.query_learnable, inst.query_index >= n_valid)
        assert inst.query_index.max() < n_valid + model.num_learnable


def test_thing_selection_scores_proposals_on_thing_texts_only():
    """``proposal_texts='things'``: a proposal's selection score is its best
    thing text, so a thing proposal is picked over a better-scored stuff
    one; an image without a thing text (or without flags) keeps all of its
    texts; flags that do not fit the texts are an error naming the image.
    In a training step the selection reads the samples' own flags."""
    from mmdet.structures import DetDataSample
    model = build_model('mixed', dn=False, proposal_texts='things')
    with pytest.raises(ValueError, match='proposal_texts'):
        build_model('mixed', proposal_texts='stuff')
    samples = [DetDataSample(metainfo=m) for m in (
        dict(text_is_thing=[True, False, True]),
        dict(text_is_thing=[False, False]), dict())]
    text_mask = torch.tensor([[True, True, True], [True, True, False],
                              [True, True, True]])
    assert model.selection_texts(text_mask, samples).tolist() == [
        [True, False, True], [True, True, False], [True, True, True]]
    samples[0].set_metainfo(dict(text_is_thing=[True, False]))
    samples[0].set_metainfo(dict(img_path='a.jpg'))
    with pytest.raises(ValueError, match='a.jpg: text_is_thing has 2'):
        model.selection_texts(text_mask, samples)
    # 40 stuff proposals (text 1) score above 40 thing ones (text 0)
    S, k = 80, model.num_conditional
    enc_class = torch.full((1, S, 3), -5.)
    enc_class[0, :40, 1] = torch.linspace(5, 4, 40)
    enc_class[0, 40:, 0] = torch.linspace(3, 2, 40)
    proposals = torch.zeros(1, S, 4)
    model.dqs_cfg = None
    sel = model.selection_texts(text_mask[:1], [DetDataSample(
        metainfo=dict(text_is_thing=[True, False, True]))])
    assert (model.topk_proposals(enc_class, sel, proposals) >= 40).all()
    assert (model.topk_proposals(enc_class, text_mask[:1], proposals)
            < 40).all()
    # a training step selects on each sample's own thing texts
    model = build_model('mixed', dn=False, proposal_texts='things')
    data = preprocess(model, batch(), True)
    seen = {}
    topk = model.topk_proposals

    def spy(enc_class, text_mask, *args, **kwargs):
        seen['mask'] = text_mask
        return topk(enc_class, text_mask, *args, **kwargs)
    model.topk_proposals = spy
    losses = model.loss(data['inputs'], data['data_samples'])
    assert all(torch.isfinite(v).all() for v in losses.values()
               if isinstance(v, torch.Tensor))
    for i, s in enumerate(data['data_samples']):
        flags = list(s.metainfo['text_is_thing'])
        assert not all(flags) and any(flags)  # the case under test
        assert seen['mask'][i, :len(flags)].tolist() == flags
        assert not seen['mask'][i, len(flags):].any()

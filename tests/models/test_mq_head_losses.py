"""MQHead's batched losses: one mask build and one point-sampling call, and
one focal/L1/GIoU call, for every prediction set give each set the losses it
would get alone; the denoising mask subset; MaskDINO's unified query
selection switches."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from mqformer.models.heads.mask_losses import MaskLosses
from .test_mqformer import batch, build_model, preprocess


def fixed_points(head, preds):
    """Deterministic stand-in for Mask2Former's uncertainty sampling
    (``MaskLosses.uncertain_points``): the same grid of points for every
    mask."""
    g = torch.linspace(0.05, 0.95, int(head.num_points**0.5))
    yy, xx = torch.meshgrid(g, g, indexing='ij')
    pts = torch.stack([xx.flatten(), yy.flatten()], -1)
    return pts[None].expand(len(preds), -1, -1)


@pytest.mark.parametrize('sampling', ['points', 'dense'])
def test_batched_mask_losses_equal_per_set_losses(monkeypatch, sampling):
    monkeypatch.setattr(MaskLosses, 'uncertain_points', fixed_points)
    head = build_model('mixed').bbox_head
    head.num_points = 64
    head.mask_loss_sampling = sampling
    torch.manual_seed(0)
    B, N, C, h, w = 2, 12, head.embed_dims, 10, 14
    feats = torch.randn(B, C, h, w)
    gts = [InstanceData(labels=torch.tensor([0, 1]),
                        masks=torch.rand(2, h, w) > 0.5),
           InstanceData(labels=torch.tensor([0, 1, 2]),
                        masks=torch.rand(3, h, w) > 0.5),
           ]
    sets = []
    for s in range(3):
        embeds = torch.randn(B, N, C, requires_grad=True)
        pos = [torch.randperm(N)[:2], torch.randperm(N)[:3 - s]]
        pos_gt = [torch.tensor([1, 0]), torch.arange(3 - s)]
        sets.append((f's{s}_', embeds, pos, pos_gt))
    joint = head.loss_masks(sets, feats, gts)
    for s in sets:
        alone = head.loss_masks([s], feats, gts)
        for k, v in alone.items():
            assert torch.allclose(joint[k], v, atol=1e-6), k
    # an image without masks (detection-only) adds nothing
    gts_det = [gts[0], InstanceData(labels=torch.tensor([0]))]
    with_det = head.loss_masks(sets[:1], feats, gts_det)
    only_first = head.loss_masks(
        [(sets[0][0], sets[0][1], sets[0][2][:1], sets[0][3][:1])],
        feats[:1], gts[:1])
    for k, v in only_first.items():
        assert torch.allclose(with_det[k], v, atol=1e-6), k


def one_set_cls_box_losses(head, cls, boxes, text_mask, gts, metas, pos,
                           pos_gt):
    """Focal, L1 and GIoU of one prediction set with mmdet's losses called
    the plain way (mean over the set's matches)."""
    B, N, T = cls.shape
    targets = torch.zeros(B, N, T)
    for b in range(B):
        targets[b, pos[b], gts[b].labels[pos_gt[b]]] = 1
    avg = max(sum(len(p) for p in pos), 1)
    weights = text_mask[:, None].expand(B, N, T).float()
    out = dict(loss_cls=head.loss_cls(cls.reshape(-1, T), targets.reshape(
        -1, T), weights.reshape(-1, T), avg_factor=avg))
    p, t, f = [], [], []
    for b in range(B):
        h, w = metas[b]['img_shape']
        keep = gts[b].is_thing[pos_gt[b]]
        p.append(boxes[b, pos[b][keep]])
        t.append(gts[b].bboxes[pos_gt[b][keep]] / torch.tensor([w, h, w, h]))
        f.append(torch.tensor([w, h, w, h]).expand(int(keep.sum()), 4))
    p, t, f = torch.cat(p), torch.cat(t), torch.cat(f)
    if len(p) == 0:
        return dict(out, loss_bbox=boxes.sum() * 0, loss_iou=boxes.sum() * 0)
    out['loss_bbox'] = head.loss_bbox(p, bbox_xyxy_to_cxcywh(t),
                                      avg_factor=avg)
    out['loss_iou'] = head.loss_iou(bbox_cxcywh_to_xyxy(p) * f, t * f,
                                    avg_factor=avg)
    return out


def test_batched_cls_box_losses_equal_per_set_losses():
    """One focal/L1/GIoU call over every prediction set gives each set the
    losses, and the gradients, of mmdet's losses on that set alone."""
    head = build_model('mixed').bbox_head
    torch.manual_seed(0)
    B, T = 2, 6
    text_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    metas = [dict(img_shape=(64, 96)), dict(img_shape=(80, 48))]
    gts = []
    for b, (h, w) in enumerate(m['img_shape'] for m in metas):
        xy = torch.rand(3, 2) * torch.tensor([w, h]) / 2
        wh = torch.rand(3, 2) * torch.tensor([w, h]) / 2 + 2
        gts.append(InstanceData(labels=torch.tensor([0, 3, 1 + b]),
                                bboxes=torch.cat([xy, xy + wh], 1),
                                is_thing=torch.tensor([True, b == 0, True])))
    # sets of different sizes (decoder layers, proposals, denoising); the
    # last one has no match at all
    sets = []
    for s, N in enumerate((10, 7, 12, 5)):
        cls = torch.randn(B, N, T, requires_grad=True)
        boxes = (torch.rand(B, N, 4) * 0.5 + 0.25).requires_grad_()
        if s == 3:
            assignment = ([torch.zeros(0, dtype=torch.long)] * 2,
                          [torch.zeros(0, dtype=torch.long)] * 2)
        else:
            n = 2 + s % 2  # matches in image 1
            assignment = ([torch.randperm(N)[:3], torch.randperm(N)[:n]],
                          [torch.randperm(3), torch.randperm(3)[:n]])
        sets.append((cls, boxes, assignment))
    joint = head.loss_cls_boxes([c for c, _, _ in sets],
                                [b for _, b, _ in sets], text_mask, gts,
                                metas, [a for _, _, a in sets])
    sum(sum(d.values()) for d in joint).backward()
    joint_grads = [(c.grad.clone(), b.grad.clone()) for c, b, _ in sets]
    for (cls, boxes, (pos, pos_gt)), got, grads in zip(sets, joint,
                                                      joint_grads):
        cls.grad = boxes.grad = None
        alone = one_set_cls_box_losses(head, cls, boxes, text_mask, gts,
                                       metas, pos, pos_gt)
        assert alone.keys() == got.keys()
        for k, v in alone.items():
            assert torch.allclose(got[k], v, rtol=1e-5, atol=1e-7), k
        sum(alone.values()).backward()
        assert torch.allclose(grads[0], cls.grad, rtol=1e-4, atol=1e-7)
        assert torch.allclose(grads[1], boxes.grad, rtol=1e-4, atol=1e-7)
    assert joint[0]['loss_bbox'] > 0 and joint[3]['loss_bbox'] == 0
    # the single-set call is the same computation
    one = head.loss_cls_box(sets[1][0], sets[1][1], text_mask, gts, metas,
                            *sets[1][2])
    for k, v in one.items():
        assert torch.allclose(v, joint[1][k], rtol=1e-6), k


def two_matches(B, T):
    """Metas, GT (two boxes per image), text mask and an assignment of
    queries 1 and 4 to them, for B 64x64 images with T texts."""
    metas = [dict(img_shape=(64, 64))] * B
    gts = [InstanceData(labels=torch.tensor([0, 2]),
                        bboxes=torch.tensor([[2., 4., 30., 40.],
                                             [10., 0., 64., 20.]]))] * B
    text_mask = torch.ones(B, T, dtype=torch.bool)
    pos = ([torch.tensor([1, 4])] * B, [torch.tensor([0, 1])] * B)
    return metas, gts, text_mask, pos


def test_batched_cls_box_losses_sum_in_float32_under_amp():
    """bfloat16 logits and boxes (as CPU autocast makes them) give float32
    losses, close to the float32 computation on the same values."""
    head = build_model('mixed').bbox_head
    torch.manual_seed(0)
    B, N, T = 2, 40, 6
    cls = torch.randn(B, N, T).bfloat16()
    boxes = (torch.rand(B, N, 4) * 0.5 + 0.25).bfloat16()
    metas, gts, text_mask, pos = two_matches(B, T)
    low = head.loss_cls_boxes([cls], [boxes], text_mask, gts, metas, [pos])[0]
    full = head.loss_cls_boxes([cls.float()], [boxes.float()], text_mask, gts,
                               metas, [pos])[0]
    for k, v in low.items():
        assert v.dtype == torch.float32, k
        assert torch.allclose(v, full[k], rtol=2e-2), k


def test_batched_cls_box_losses_are_one_graph():
    """The class/box losses of 8 prediction sets make no more backward nodes
    than those of 1 (beyond each set's own inputs), and profile_step.py's
    --node-sources counts them to the head method that made them (mmdet's
    loss functions to their caller)."""
    import os.path as osp
    import sys
    sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'benchmarks'))
    import profile_step
    head = build_model('mixed').bbox_head
    B, N, T = 2, 9, 5
    metas, gts, text_mask, pos = two_matches(B, T)

    def graph(num_sets):
        cls = [torch.randn(B, N, T, requires_grad=True)
               for _ in range(num_sets)]
        boxes = [torch.rand(B, N, 4, requires_grad=True)
                 for _ in range(num_sets)]
        with torch.autograd.set_detect_anomaly(True, check_nan=False):
            out = head.loss_cls_boxes(cls, boxes, text_mask, gts, metas,
                                      [pos] * num_sets)
        nodes = set()
        for d in out:
            for v in d.values():
                nodes |= profile_step.graph_nodes(v.grad_fn)
        return nodes

    one, eight = graph(1), graph(8)
    leaves = [n for n in eight if type(n).__name__ == 'AccumulateGrad']
    assert len(leaves) == 16  # 8 sets' logits and boxes
    assert len(eight) - len(leaves) == len(one) - 2
    sources = {profile_step.node_source(n) for n in eight}
    assert sources == {'mq_head.py:loss_cls_boxes', 'parameters'}, sources


def test_uncertain_points_are_mask2formers():
    """The same random draws as mmdet's
    get_uncertain_point_coords_with_randomness give the same points: the
    uncertain ones as a set (unsorted top-k), the uniform ones in order."""
    from mmdet.models.utils import \
        get_uncertain_point_coords_with_randomness as mmdet_points
    head = build_model('mixed').bbox_head
    head.num_points = 40
    logits = torch.randn(7, 1, 9, 11)
    torch.manual_seed(5)
    ours = head.uncertain_points(logits)
    torch.manual_seed(5)
    theirs = mmdet_points(logits, None, head.num_points,
                          head.oversample_ratio, head.importance_sample_ratio)
    assert ours.shape == theirs.shape == (7, 40, 2)
    k = int(head.importance_sample_ratio * head.num_points)

    def as_set(p):  # rows of points in a fixed order
        return p[torch.arange(len(p))[:, None],
                 (p[..., 0] * 1e4 + p[..., 1]).argsort(1)]
    assert torch.equal(as_set(ours[:, :k]), as_set(theirs[:, :k]))
    assert torch.equal(ours[:, k:], theirs[:, k:])


def test_dense_mask_losses_read_every_pixel():
    """``mask_loss_sampling='dense'``: BCE and dice over every pixel of the
    (h, w) mask logits against the GT masks (at the padded input size)
    averaged over each (H/h, W/w) cell; Mask2Former's points are the
    default."""
    head = build_model('mixed').bbox_head
    head.mask_loss_sampling = 'dense'
    torch.manual_seed(0)
    C, h, w = head.embed_dims, 6, 8
    feats = torch.randn(1, C, h, w)
    gt_masks = torch.rand(3, 4 * h, 4 * w) > 0.5
    gts = [InstanceData(labels=torch.tensor([0, 1, 2]), masks=gt_masks)]
    embeds = torch.randn(1, 5, C)
    pos, pos_gt = [torch.tensor([4, 0])], [torch.tensor([2, 0])]
    out = head.loss_masks([('', embeds, pos, pos_gt)], feats, gts)
    logits = torch.einsum('nc,chw->nhw', embeds[0, pos[0]], feats[0])
    target = F.avg_pool2d(gt_masks[pos_gt[0]].float()[None], 4)[0]
    p, t = logits.sigmoid().flatten(1), target.flatten(1)
    dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    bce = F.binary_cross_entropy_with_logits(logits.flatten(1), t)
    assert torch.allclose(out['loss_dice'], 5 * dice.mean(), atol=1e-5)
    assert torch.allclose(out['loss_mask'], 5 * bce, atol=1e-5)
    assert build_model('mixed').bbox_head.mask_loss_sampling == 'points'
    with pytest.raises(ValueError, match='mask_loss_sampling'):
        build_model('mixed', bbox_head=dict(mask_loss_sampling='boundary'))


def test_pixel_points_are_the_uncertain_pixels_then_random_ones():
    """``mask_loss_sampling='pixels'``: of h*w pixels, min(num_points,
    h*w / oversample_ratio) are read, the first importance_sample_ratio of
    them the pixels whose logits are nearest 0; the loss reads the logits
    and area-averaged targets there."""
    head = build_model('mixed').bbox_head
    head.num_points, head.oversample_ratio = 64, 3.0
    head.importance_sample_ratio = 0.75
    torch.manual_seed(0)
    logits = torch.randn(4, 12 * 10)
    idx = head.pixel_points(logits)
    assert idx.shape == (4, 40)  # 120 / 3 < 64
    nearest = (-logits.abs()).topk(30, dim=1)[1]
    assert torch.equal(idx[:, :30].sort(1)[0], nearest.sort(1)[0])
    assert (idx >= 0).all() and (idx < 120).all()
    head.num_points = 16
    assert head.pixel_points(logits).shape == (4, 16)
    # the loss reads exactly those pixels
    head.mask_loss_sampling = 'pixels'
    head.num_points = 64
    C, h, w = head.embed_dims, 6, 8
    feats = torch.randn(1, C, h, w)
    gt_masks = torch.rand(2, 4 * h, 4 * w) > 0.5
    gts = [InstanceData(labels=torch.tensor([0, 1]), masks=gt_masks)]
    embeds = torch.randn(1, 3, C)
    pos, pos_gt = [torch.tensor([2, 0])], [torch.tensor([1, 0])]
    torch.manual_seed(1)
    out = head.loss_masks([('', embeds, pos, pos_gt)], feats, gts)
    logits = torch.einsum('nc,chw->nhw', embeds[0, pos[0]],
                          feats[0]).flatten(1)
    torch.manual_seed(1)
    idx = head.pixel_points(logits)
    target = F.avg_pool2d(gt_masks[pos_gt[0]].float()[None], 4)[0]
    p, t = logits.gather(1, idx), target.flatten(1).gather(1, idx)
    bce = F.binary_cross_entropy_with_logits(p, t)
    assert torch.allclose(out['loss_mask'], 5 * bce, atol=1e-5)


def test_dn_mask_groups_supervise_the_first_groups_only():
    head = build_model('mixed').bbox_head
    gts = [InstanceData(labels=torch.tensor([0, 1])),
           InstanceData(labels=torch.tensor([2]))]
    dn_meta = dict(num_denoising_groups=5, num_denoising_queries=20)
    pos, pos_gt = head.get_dn_targets(gts, dn_meta)
    assert pos[0].tolist() == [0, 1, 4, 5, 8, 9, 12, 13, 16, 17]
    assert pos_gt[1].tolist() == [0] * 5
    pos2, pos_gt2 = head.get_dn_targets(gts, dn_meta, num_groups=2)
    assert pos2[0].tolist() == [0, 1, 4, 5] and pos2[1].tolist() == [0, 4]
    assert pos_gt2[0].tolist() == [0, 1, 0, 1]


def test_dn_mask_group_cap_changes_only_dn_mask_losses(monkeypatch):
    monkeypatch.setattr(MaskLosses, 'uncertain_points', fixed_points)
    model = build_model('mixed')
    model.dn_query_generator.num_dn_queries = 60  # several groups
    data = preprocess(model, batch(), True)
    losses = {}
    for cap in (None, 1):
        model.bbox_head.num_dn_mask_groups = cap
        torch.manual_seed(3)
        losses[cap] = model.loss(data['inputs'], data['data_samples'])
    assert losses[None].keys() == losses[1].keys()
    changed = {k for k in losses[None]
               if not torch.allclose(losses[None][k], losses[1][k])}
    assert changed and all('dn_' in k and ('mask' in k or 'dice' in k)
                           for k in changed), changed


def test_unified_query_selection_switches():
    data = None
    for enc_mask_loss, mask_box_init in ((True, True), (False, False)):
        model = build_model('mixed', enc_mask_loss=enc_mask_loss,
                            mask_box_init=mask_box_init)
        data = data or preprocess(model, batch(), True)
        losses = model.loss(data['inputs'], data['data_samples'])
        assert ('enc_loss_mask' in losses) == enc_mask_loss
        assert ('enc_loss_dice' in losses) == enc_mask_loss
        assert 'enc_loss_bbox' in losses and 'enc_loss_cls' in losses
    # the proposals' mask loss trains the encoder (not detached like the
    # conditional queries' content)
    model = build_model('mixed', enc_mask_loss=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    losses['enc_loss_dice'].backward()
    grad = model.memory_trans_fc.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_mask_enhanced_anchors_start_from_the_masks():
    """With mask_box_init the conditional queries' first boxes are their
    proposals' mask boxes; without it the regressed proposals."""
    from mqformer.models.detectors.mqformer import MQFormer
    model = build_model('conditional', dn=False, mask_box_init=True).eval()
    data = preprocess(model, batch(), False)
    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        enc_in, text = model.pre_transformer(feats, data['data_samples'])
        enc = model.forward_encoder(**enc_in)
        content, refs, _ = model.select_queries(
            enc['memory'], enc['memory_mask'], enc['spatial_shapes'],
            text['text_embeds'], text['text_mask'], enc['mask_features'],
            data['data_samples'])
        masks = torch.einsum('bkc,bchw->bkhw',
                             model.bbox_head.mask_embed(
                                 model.decoder.norm(content)),
                             enc['mask_features'])
        samples = data['data_samples']
        boxes, found = MQFormer.mask_boxes(
            masks, MQFormer.image_shapes(samples),
            samples[0].batch_input_shape)
        assert found.any()
        assert torch.allclose(refs.sigmoid()[found], boxes[found], atol=2e-3)
        model.mask_box_init = False
        _, refs_plain, _ = model.select_queries(
            enc['memory'], enc['memory_mask'], enc['spatial_shapes'],
            text['text_embeds'], text['text_mask'], enc['mask_features'],
            data['data_samples'])
        assert not torch.allclose(refs_plain[found], refs[found])


def test_cosine_text_logits_with_learnable_scale():
    """logit_scale: logits are cosine x a learnable scale + bias, so they do
    not depend on the embeddings' norms; None keeps the scaled dot product."""
    head = build_model('mixed', bbox_head=dict(logit_scale=1 / 0.07)).bbox_head
    assert head.logit_scale_init is not None
    torch.manual_seed(0)
    q, t = torch.randn(2, 5, head.embed_dims), torch.randn(2, 3,
                                                            head.embed_dims)
    logits = head.text_logits(q, t)
    assert torch.allclose(logits, head.text_logits(q, 7.0 * t), atol=1e-5)
    cos = torch.nn.functional.cosine_similarity(
        head.cls_embed(q)[:, :, None], t[:, None], dim=-1)
    assert torch.allclose(logits, cos / 0.07 + head.logit_bias, atol=1e-4)
    logits.sum().backward()
    assert head.log_logit_scale.grad is not None
    plain = build_model('mixed', bbox_head=dict(logit_scale=None)).bbox_head
    assert not torch.allclose(plain.text_logits(q, t),
                              plain.text_logits(q, 7.0 * t))

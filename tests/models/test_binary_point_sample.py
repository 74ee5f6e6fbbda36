"""binary_point_sample reads the GT masks as mmcv's point_sample reads their
per-row float copies (the mask losses' and the matching's targets)."""
import torch
from mmcv.ops import point_sample

from mqformer.models.layers.binary_point_sample import binary_point_sample


def test_equals_point_sample_of_the_indexed_float_masks():
    torch.manual_seed(0)
    G, H, W, M, P = 5, 13, 21, 9, 300
    masks = torch.rand(G, H, W) > 0.5
    index = torch.tensor([0, 4, 4, 2, 1, 0, 3, 3, 4])  # repeats: one GT, many sets
    points = torch.rand(M, P, 2)
    # the borders, where zero padding decides half the weights
    points[:, :4] = torch.tensor([[0., 0.], [1., 1.], [0., 1.], [0.999, 0.]])
    expected = point_sample(masks[index, None].float(), points)[:, 0]
    got = binary_point_sample(masks, index, points)
    assert got.shape == (M, P) and got.dtype == torch.float32
    assert torch.equal(got, expected)  # the same kernel on the same points
    # no rows
    assert binary_point_sample(masks, index[:0], points[:0]).shape == (0, P)
    # a pixel centre reads the pixel; a point between two pixels their mean
    one = torch.zeros(1, 2, 2, dtype=torch.bool)
    one[0, 0, 1] = True
    pts = torch.tensor([[[0.75, 0.25], [0.5, 0.25], [0.25, 0.25]]])
    assert binary_point_sample(one, torch.tensor([0]), pts).tolist() == \
        [[1.0, 0.5, 0.0]]


def test_mask_losses_equal_the_float_copy_path(monkeypatch):
    """The head's point-sampled mask losses are those of point_sample on the
    matched queries' float GT masks (the computation before the helper)."""
    from mmengine.structures import InstanceData

    from mqformer.models.heads.mask_losses import MaskLosses

    from .test_mq_head_losses import fixed_points
    from .test_mqformer import build_model
    monkeypatch.setattr(MaskLosses, 'uncertain_points', fixed_points)
    head = build_model('mixed').bbox_head
    head.num_points = 64
    torch.manual_seed(1)
    B, N, C, h, w = 2, 6, head.embed_dims, 8, 12
    feats = torch.randn(B, C, h, w)
    gts = [InstanceData(labels=torch.tensor([0, 1]),
                        masks=torch.rand(2, 4 * h, 4 * w) > 0.5),
           InstanceData(labels=torch.tensor([0, 1, 2]),
                        masks=torch.rand(3, 4 * h, 4 * w) > 0.5)]
    embeds = torch.randn(B, N, C)
    pos, pos_gt = [torch.tensor([3, 1]), torch.tensor([0, 5, 2])], \
        [torch.tensor([1, 1]), torch.tensor([2, 0, 1])]
    got = head.loss_masks([('', embeds, pos, pos_gt)], feats, gts)
    preds = torch.cat([torch.einsum('nc,chw->nhw', embeds[b, pos[b]],
                                    feats[b]) for b in range(B)])
    targets = torch.cat([gts[b].masks[pos_gt[b]] for b in range(B)])
    points = fixed_points(head, preds)
    p = point_sample(preds[:, None], points)[:, 0]
    t = point_sample(targets[:, None].float(), points)[:, 0]
    dice = head.loss_dice(p, t, reduction_override='none').mean()
    bce = head.loss_mask(p, t, reduction_override='none').mean()
    assert torch.allclose(got['loss_dice'], dice, atol=1e-6)
    assert torch.allclose(got['loss_mask'], bce, atol=1e-6)

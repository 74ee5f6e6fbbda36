"""Point sampling of GT masks read by several rows without a copy per row."""
import torch
from mmcv.ops import point_sample
from torch import Tensor


def binary_point_sample(masks: Tensor, index: Tensor, points: Tensor) -> Tensor:
    """``point_sample(masks[index, None].float(), points)[:, 0]``, with one
    float copy per mask instead of one per row.

    mmcv's ``point_sample`` (``grid_sample``) reads one map per row of
    points. A ground truth matched in every prediction set is read by as
    many rows (a crowded-world training step of the tiny model matches
    740-1,030 masks, 9 per GT mask; their per-row float copies at 160x160
    are 58-100 MB). Here the
    rows are grouped by the mask they read, each group's points laid side by
    side in one grid row of its mask, and the one ``grid_sample`` call reads
    the (G, H, W) masks once each: the same kernel on the same points, so
    the values are bit-identical.

    Args:
        masks (Tensor): (G, H, W) bool or 0/1 masks.
        index (Tensor): (M, ) long, the mask each row of ``points`` reads.
        points (Tensor): (M, P, 2) xy in [0, 1] of the mask's width/height.

    Returns:
        Tensor: (M, P) float, ``masks[index]`` at the points (bilinear, zero
        outside, as ``point_sample``).
    """
    G = len(masks)
    M, P, _ = points.shape
    if M == 0:
        return points.new_zeros(0, P)
    order = index.argsort(stable=True)
    sorted_index = index[order]
    counts = torch.bincount(index, minlength=G)
    starts = counts.cumsum(0) - counts
    slot = torch.arange(M, device=index.device) - starts[sorted_index]
    grid = points.new_zeros(G, int(counts.max()), P, 2)
    grid[sorted_index, slot] = points[order]
    values = point_sample(masks[:, None].to(points.dtype),
                          grid.flatten(1, 2)).view(G, -1, P)
    out = torch.empty_like(points[..., 0])
    out[order] = values[sorted_index, slot]
    return out

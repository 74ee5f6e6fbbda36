"""Multi-scale level geometry (spatial shapes, encoder reference points,
encoder proposals) computed from the feature maps' sizes with tensor ops,
so that a traced ONNX graph keeps the image size as a dimension.

mmdet computes the same with ``torch.linspace(0, H - 1, H)`` and Python
numbers, which the tracer freezes; ``arange(H) + 0.5`` is the same grid
(exactly: the step is 1) and stays symbolic. In eager mode the values are
plain ints, as before."""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def level_sizes(spatial_shapes) -> List[Tuple]:
    """(L, 2) spatial shapes -> [(h, w)] per level: Python ints, or while
    tracing 0-dim tensors that the graph keeps symbolic."""
    if torch.jit.is_tracing():
        return [(hw[0], hw[1]) for hw in spatial_shapes]
    return [(int(h), int(w)) for h, w in spatial_shapes]


def spatial_shapes_of(sizes: Sequence[Tuple], device) -> Tensor:
    """[(h, w)] per level (from ``feat.shape[-2:]``) -> (L, 2) long."""
    if torch.jit.is_tracing():
        return torch.stack([
            torch.stack([torch.as_tensor(h), torch.as_tensor(w)])
            for h, w in sizes
        ]).to(device=device, dtype=torch.long)
    return torch.as_tensor([(int(h), int(w)) for h, w in sizes],
                           dtype=torch.long, device=device)


def split_levels(x: Tensor, sizes: Sequence[Tuple]) -> List[Tensor]:
    """(B, S, ...) -> per level (B, h * w, ...): ``x.split([h * w, ...], 1)``
    that also traces with symbolic sizes."""
    if not torch.jit.is_tracing():
        return list(x.split([h * w for h, w in sizes], 1))
    out, start = [], 0
    for h, w in sizes:
        out.append(x[:, start:start + h * w])
        start = start + h * w
    return out


def _grid(h, w, offset: float, device) -> Tuple[Tensor, Tensor]:
    """(h, w) grids of y and x cell coordinates + ``offset``."""
    ys = torch.arange(h, dtype=torch.float32, device=device) + offset
    xs = torch.arange(w, dtype=torch.float32, device=device) + offset
    return torch.meshgrid(ys, xs, indexing='ij')


def encoder_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor,
                             device) -> Tensor:
    """mmdet's ``DeformableDetrTransformerEncoder
    .get_encoder_reference_points`` (same values).

    Args:
        spatial_shapes (Tensor): (L, 2) as (h, w).
        valid_ratios (Tensor): (B, L, 2) as (w, h).

    Returns:
        Tensor: (B, S, L, 2) reference points.
    """
    refs = []
    for lvl, (h, w) in enumerate(level_sizes(spatial_shapes)):
        ref_y, ref_x = _grid(h, w, 0.5, device)
        ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * h)
        ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * w)
        refs.append(torch.stack((ref_x, ref_y), -1))
    return torch.cat(refs, 1)[:, :, None] * valid_ratios[:, None]


def encoder_output_proposals(memory: Tensor, memory_mask: Optional[Tensor],
                             spatial_shapes: Tensor
                             ) -> Tuple[Tensor, Tensor]:
    """mmdet's ``DeformableDETR.gen_encoder_output_proposals`` without its
    output projection (same values): one proposal per memory position, its
    cell's centre normalised to the image's valid area and a side of
    ``0.05 * 2 ** level``.

    Level order: the levels come as the memory lays them out. MQSegEncoder
    lays them coarse to fine (Mask2Former's pixel decoder and MaskDINO's
    encoder do the same), so the coarsest level gets the smallest initial
    side - as in MaskDINO, whose proposals this follows. With mask-enhanced
    anchors the decoder's boxes come from the proposals' masks, so the side
    only seeds the encoder's box regression.

    Args:
        memory (Tensor): (B, S, C).
        memory_mask (Tensor, optional): (B, S), True on padding.
        spatial_shapes (Tensor): (L, 2) as (h, w).

    Returns:
        tuple: (B, S, C) memory, zero on padding and invalid proposals, and
        (B, S, 4) inverse-sigmoid cxcywh proposals, inf where invalid.
    """
    bs = memory.size(0)
    proposals, start = [], 0
    for lvl, (h, w) in enumerate(level_sizes(spatial_shapes)):
        if memory_mask is not None:
            mask = memory_mask[:, start:start + h * w].view(bs, h, w, 1)
            valid_h = torch.sum(~mask[:, :, 0, 0], 1).unsqueeze(-1)
            valid_w = torch.sum(~mask[:, 0, :, 0], 1).unsqueeze(-1)
            scale = torch.cat([valid_w, valid_h], 1).view(bs, 1, 1, 2)
        else:
            scale = spatial_shapes[lvl].flip(0).to(memory).view(1, 1, 1, 2)
        grid_y, grid_x = _grid(h, w, 0.0, memory.device)
        grid = torch.stack([grid_x, grid_y], -1)
        grid = (grid.unsqueeze(0).expand(bs, -1, -1, -1) + 0.5) / scale
        wh = torch.ones_like(grid) * 0.05 * (2.0**lvl)
        proposals.append(torch.cat((grid, wh), -1).view(bs, -1, 4))
        start = start + h * w
    proposals = torch.cat(proposals, 1)
    valid = ((proposals > 0.01) & (proposals < 0.99)).sum(
        -1, keepdim=True) == proposals.shape[-1]
    proposals = torch.log(proposals / (1 - proposals))
    if memory_mask is not None:
        proposals = proposals.masked_fill(memory_mask.unsqueeze(-1),
                                          float('inf'))
        memory = memory.masked_fill(memory_mask.unsqueeze(-1), float(0))
    proposals = proposals.masked_fill(~valid, float('inf'))
    return memory.masked_fill(~valid, float(0)), proposals

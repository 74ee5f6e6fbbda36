"""A faster CPU path for mmcv's multi-scale deformable attention."""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from torch import Tensor, nn

from .level_geometry import level_sizes, split_levels


def multi_scale_deformable_attn_cpu(value: Tensor,
                                    value_spatial_shapes: Sequence,
                                    sampling_locations: Tensor,
                                    attention_weights: Tensor) -> Tensor:
    """mmcv's ``multi_scale_deformable_attn_pytorch`` (the path every
    non-CUDA device takes), same result, about a third less time forward +
    backward on the CPU.

    mmcv stacks every level's bilinear samples into one
    (B*heads, D, Q, L*P) tensor and multiplies it by the broadcast weights;
    the copy, the product and their gradients dominate its cost. Here each
    level's samples (B*heads, D, Q, P) are weighted and summed as they come.

    Args:
        value (Tensor): (B, S, heads, D), S = sum(H_l * W_l).
        value_spatial_shapes (Tensor | list): (L, 2) as (h, w).
        sampling_locations (Tensor): (B, Q, heads, L, P, 2) in [0, 1].
        attention_weights (Tensor): (B, Q, heads, L, P).

    Returns:
        Tensor: (B, Q, heads * D).
    """
    B, _, heads, D = value.shape
    _, Q, _, L, P, _ = sampling_locations.shape
    shapes = level_sizes(value_spatial_shapes)  # symbolic while tracing
    values = split_levels(value, shapes)
    grids = 2 * sampling_locations - 1
    weights = attention_weights.transpose(1, 2).reshape(B * heads, 1, Q, L, P)
    out = None
    for lvl, (h, w) in enumerate(shapes):
        v = values[lvl].flatten(2).transpose(1, 2).reshape(B * heads, D, h, w)
        grid = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)  # (BH,Q,P,2)
        samples = F.grid_sample(v, grid, mode='bilinear',
                                padding_mode='zeros', align_corners=False)
        level_out = (samples * weights[..., lvl, :]).sum(-1)  # (BH, D, Q)
        out = level_out if out is None else out + level_out
    return out.reshape(B, heads * D, Q).transpose(1, 2).contiguous()


class CPUMultiScaleDeformableAttention(MultiScaleDeformableAttention):
    """mmcv's :class:`MultiScaleDeformableAttention` (same parameters, same
    outputs; CUDA still takes mmcv's kernel) that runs
    :func:`multi_scale_deformable_attn_cpu` off CUDA.

    The forward is mmcv's in small steps and calls the kernel directly:
    nothing module-level is swapped, so stock and converted modules can run
    in threads side by side.
    """

    def forward(self, query: Tensor, key: Tensor = None, value: Tensor = None,
                identity: Tensor = None, query_pos: Tensor = None,
                key_padding_mask: Tensor = None,
                reference_points: Tensor = None,
                spatial_shapes: Tensor = None,
                level_start_index: Tensor = None, **kwargs) -> Tensor:
        """Shapes as mmcv's (``batch_first``: query (B, Q, C), value
        (B, S, C), reference_points (B, Q, L, 2 or 4), spatial_shapes
        (L, 2)); returns (B, Q, C)."""
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.permute(1, 0, 2), value.permute(1, 0, 2)
        bs, num_value, _ = value.shape
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        locations, weights = self.sampling(query, reference_points,
                                           spatial_shapes)
        output = self.output_proj(self.sample(
            value, spatial_shapes, level_start_index, locations, weights))
        if not self.batch_first:
            output = output.permute(1, 0, 2)
        return self.dropout(output) + identity

    def sampling(self, query: Tensor, reference_points: Tensor,
                 spatial_shapes: Tensor):
        """Sampling locations (B, Q, heads, L, P, 2) in [0, 1] and softmaxed
        weights (B, Q, heads, L, P) of the queries (B, Q, C)."""
        bs, nq, _ = query.shape
        shape = (bs, nq, self.num_heads, self.num_levels, self.num_points)
        offsets = self.sampling_offsets(query).view(*shape, 2)
        weights = self.attention_weights(query).view(
            bs, nq, self.num_heads, -1).softmax(-1).view(*shape)
        ref = reference_points[:, :, None, :, None]
        if reference_points.shape[-1] == 2:
            normalizer = torch.stack(
                [spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
            return ref + offsets / normalizer[None, None, None, :, None], \
                weights
        if reference_points.shape[-1] == 4:
            return ref[..., :2] + offsets / self.num_points * \
                ref[..., 2:] * 0.5, weights
        raise ValueError('reference_points: the last dim must be 2 or 4, '
                         f'got {reference_points.shape[-1]}')

    def sample(self, value: Tensor, spatial_shapes: Tensor,
               level_start_index: Tensor, locations: Tensor,
               weights: Tensor) -> Tensor:
        """The attention itself: (B, Q, heads * D). mmcv's CUDA kernel on
        CUDA, :func:`multi_scale_deformable_attn_cpu` elsewhere."""
        if value.is_cuda:
            from mmcv.ops.multi_scale_deform_attn import \
                MultiScaleDeformableAttnFunction
            return MultiScaleDeformableAttnFunction.apply(
                value, spatial_shapes, level_start_index, locations,
                weights, self.im2col_step)
        return multi_scale_deformable_attn_cpu(value, spatial_shapes,
                                               locations, weights)


def use_cpu_deformable_attention(model: nn.Module) -> int:
    """Turn every mmcv :class:`MultiScaleDeformableAttention` of ``model``
    (any mmdet model: DINO, Mask2Former's pixel decoder, ...) into
    :class:`CPUMultiScaleDeformableAttention` in place; parameters and
    state-dict keys are unchanged. Returns how many were changed."""
    n = 0
    for m in model.modules():
        if type(m) is MultiScaleDeformableAttention:
            m.__class__ = CPUMultiScaleDeformableAttention
            n += 1
    return n

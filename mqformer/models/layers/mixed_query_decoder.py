"""MixedQueryDecoder: DINO-style deformable decoder over learnable + conditional
queries that exchange information through dual-query cross-attention."""
from typing import Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import MultiheadAttention
from mmengine.model import ModuleList
from torch import Tensor, nn

from mmdet.models.layers import (DeformableDetrTransformerDecoderLayer,
                                 DinoTransformerDecoder)
from mmdet.models.layers.transformer.utils import (MLP, coordinate_to_encoding,
                                                   inverse_sigmoid)
from mmdet.registry import MODELS
from mmdet.utils import OptConfigType
from .query_split import QuerySplit

QUERY_MODES = ('mixed', 'learnable', 'conditional')


def check_query_mode(query_mode: str) -> str:
    if query_mode not in QUERY_MODES:
        raise ValueError(f'query_mode must be one of {QUERY_MODES}, '
                         f'got {query_mode!r}')
    return query_mode


@MODELS.register_module()
class MixedQueryDecoderLayer(DeformableDetrTransformerDecoderLayer):
    """Self-attention -> dual-query cross-attention -> deformable
    cross-attention -> FFN, each with its own residual and norm.

    The queries are laid out as ``[denoising | conditional | learnable]``
    (``query_split``, a :class:`QuerySplit`, gives the three counts).
    Dual-query cross-attention:

    - conditional-to-learnable: learnable queries attend to the conditional
      (matching) queries;
    - learnable-to-conditional: conditional and denoising queries attend to
      the learnable queries.

    Both read the same input (after self-attention), so neither direction sees
    the other's update within a layer. Learnable queries never read denoising
    queries, so no ground truth leaks into matching queries. When one set is
    empty (``learnable``/``conditional`` mode) the block is skipped.

    Args:
        dual_attn_cfg (dict, optional): config of both ``MultiheadAttention``
            modules; ``None`` builds no dual block (a plain DINO layer, as
            in the single-type query modes). Other args as in mmdet's
            ``DeformableDetrTransformerDecoderLayer``.
    """

    def __init__(self, *args, dual_attn_cfg: OptConfigType = None, **kwargs):
        self.dual_attn_cfg = dual_attn_cfg
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()
        self.with_dual_attn = self.dual_attn_cfg is not None
        if self.with_dual_attn:
            self.c2l_attn = MultiheadAttention(**self.dual_attn_cfg)
            self.l2c_attn = MultiheadAttention(**self.dual_attn_cfg)
            self.c2l_norm = build_norm_layer(self.norm_cfg, self.embed_dims)[1]
            self.l2c_norm = build_norm_layer(self.norm_cfg, self.embed_dims)[1]

    def dual_query_cross_attn(self, query: Tensor, query_pos: Tensor,
                              query_split: QuerySplit) -> Tensor:
        """(B, N_dn + N_c + N_l, C) -> same shape."""
        split = QuerySplit(*query_split)
        if not self.with_dual_attn or not (split.num_conditional
                                           and split.num_learnable):
            return query
        end = split.learnable.start  # denoising + conditional
        cond, learn = query[:, :end], query[:, split.learnable]
        cond_pos, learn_pos = query_pos[:, :end], query_pos[:, split.learnable]
        matching_cond = query[:, split.conditional]
        matching_cond_pos = query_pos[:, split.conditional]
        new_learn = self.c2l_norm(
            self.c2l_attn(
                query=learn,
                key=matching_cond,
                value=matching_cond,
                query_pos=learn_pos,
                key_pos=matching_cond_pos))
        new_cond = self.l2c_norm(
            self.l2c_attn(
                query=cond,
                key=learn,
                value=learn,
                query_pos=cond_pos,
                key_pos=learn_pos))
        return torch.cat([new_cond, new_learn], dim=1)

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                value: Tensor,
                query_split: QuerySplit,
                self_attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """
        Args:
            query, query_pos (Tensor): (B, N_dn + N_c + N_l, C).
            value (Tensor): encoder memory (B, sum(H_l*W_l), C).
            query_split (QuerySplit): (N_dn, N_c, N_l).
            self_attn_mask (Tensor, optional): (N, N) denoising mask, True =
                blocked.
            kwargs: ``reference_points`` (B, N, num_levels, 4),
                ``spatial_shapes``, ``level_start_index``, ``valid_ratios``
                for the deformable cross-attention.

        Returns:
            Tensor: (B, N_dn + N_c + N_l, C).
        """
        query = self.self_attn(
            query=query,
            key=query,
            value=query,
            query_pos=query_pos,
            key_pos=query_pos,
            attn_mask=self_attn_mask)
        query = self.norms[0](query)
        query = self.dual_query_cross_attn(query, query_pos, query_split)
        query = self.cross_attn(
            query=query,
            key=None,
            value=value,
            query_pos=query_pos,
            key_padding_mask=key_padding_mask,
            **kwargs)
        query = self.norms[1](query)
        query = self.ffn(query)
        return self.norms[2](query)


@MODELS.register_module()
class MixedQueryDecoder(DinoTransformerDecoder):
    """DINO's decoder with :class:`MixedQueryDecoderLayer` layers.

    As in DINO: query positions come from the sine encoding of the reference
    boxes, boxes are refined layer by layer by ``reg_branches``, and the
    intermediate outputs are normed. ``query_mode`` (``'mixed'``,
    ``'learnable'``, ``'conditional'``) decides whether the layers get the
    dual-query block (``layer_cfg.dual_attn_cfg`` defaults to the
    self-attention config). Unlike mmdet's DINO decoder, any
    ``embed_dims`` works (the sine encoding uses ``embed_dims // 2`` features
    per coordinate), and ``query_split`` reaches every layer.
    """

    def __init__(self,
                 *args,
                 query_mode: str = 'mixed',
                 post_norm_cfg: OptConfigType = None,
                 **kwargs) -> None:
        self.query_mode = check_query_mode(query_mode)
        super().__init__(*args, post_norm_cfg=post_norm_cfg, **kwargs)

    def _init_layers(self) -> None:
        layer_cfg = dict(self.layer_cfg)
        if self.query_mode == 'mixed':
            if layer_cfg.get('dual_attn_cfg') is None:
                layer_cfg['dual_attn_cfg'] = layer_cfg['self_attn_cfg']
        else:  # one query set: nothing to exchange
            layer_cfg['dual_attn_cfg'] = None
        self.layers = ModuleList([
            MixedQueryDecoderLayer(**layer_cfg) for _ in range(self.num_layers)
        ])
        self.embed_dims = self.layers[0].embed_dims
        if self.post_norm_cfg is not None:
            raise ValueError(f'There is no post_norm in {self._get_name()}')
        self.ref_point_head = MLP(self.embed_dims * 2, self.embed_dims,
                                  self.embed_dims, 2)
        self.norm = nn.LayerNorm(self.embed_dims)

    def forward(self, query: Tensor, value: Tensor, reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor,
                valid_ratios: Tensor, reg_branches: nn.ModuleList,
                query_split: QuerySplit,
                self_attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                **kwargs) -> Tuple[Tensor, Tensor]:
        """
        Args:
            query (Tensor): (B, N, C), N = N_dn + N_c + N_l.
            value (Tensor): encoder memory (B, sum(H_l*W_l), C).
            reference_points (Tensor): normalised cxcywh boxes (B, N, 4).
            spatial_shapes (Tensor): (num_levels, 2).
            level_start_index (Tensor): (num_levels, ).
            valid_ratios (Tensor): (B, num_levels, 2).
            reg_branches (ModuleList): per-layer box deltas, C -> 4.
            query_split (QuerySplit): (N_dn, N_c, N_l).
            self_attn_mask (Tensor, optional): (N, N), True = blocked.

        Returns:
            tuple: hidden states (num_layers, B, N, C) and reference boxes
            (num_layers + 1, B, N, 4); the first are the input boxes, the
            others keep gradients from their layer's ``reg_branches``.
        """
        intermediate = []
        references = [reference_points]
        for lid, layer in enumerate(self.layers):
            ref_input = reference_points[:, :, None] * torch.cat(
                [valid_ratios, valid_ratios], -1)[:, None]
            query_sine_embed = coordinate_to_encoding(
                ref_input[:, :, 0, :], num_feats=self.embed_dims // 2)
            query_pos = self.ref_point_head(query_sine_embed)
            query = layer(
                query,
                query_pos=query_pos,
                value=value,
                query_split=query_split,
                self_attn_mask=self_attn_mask,
                key_padding_mask=key_padding_mask,
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index,
                valid_ratios=valid_ratios,
                reference_points=ref_input,
                **kwargs)
            new_reference_points = (
                reg_branches[lid](query) +
                inverse_sigmoid(reference_points, eps=1e-3)).sigmoid()
            reference_points = new_reference_points.detach()
            intermediate.append(self.norm(query))
            references.append(new_reference_points)
        return torch.stack(intermediate), torch.stack(references)

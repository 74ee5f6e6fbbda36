"""MixedQueryDecoder: DINO-style deformable decoder over learnable + conditional
queries that exchange information through dual-query cross-attention."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
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
from .level_geometry import level_sizes
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

    Learnable queries, which no encoder feature places, can also read one
    feature level through Mask2Former's masked attention (``masked_attn_cfg``):
    each attends to the positions its previous layer's mask covers
    (:meth:`MixedQueryDecoder.learnable_attn_mask`), right after the dual
    block. Conditional and denoising queries keep deformable attention only.

    Args:
        dual_attn_cfg (dict, optional): config of both ``MultiheadAttention``
            modules; ``None`` builds no dual block (a plain DINO layer, as
            in the single-type query modes).
        masked_attn_cfg (dict, optional): config of the learnable queries'
            masked ``MultiheadAttention``; ``None`` builds none. Other args
            as in mmdet's ``DeformableDetrTransformerDecoderLayer``.
    """

    def __init__(self,
                 *args,
                 dual_attn_cfg: OptConfigType = None,
                 masked_attn_cfg: OptConfigType = None,
                 **kwargs):
        self.dual_attn_cfg = dual_attn_cfg
        self.masked_attn_cfg = masked_attn_cfg
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        super()._init_layers()
        self.with_dual_attn = self.dual_attn_cfg is not None
        if self.with_dual_attn:
            self.c2l_attn = MultiheadAttention(**self.dual_attn_cfg)
            self.l2c_attn = MultiheadAttention(**self.dual_attn_cfg)
            self.c2l_norm = build_norm_layer(self.norm_cfg, self.embed_dims)[1]
            self.l2c_norm = build_norm_layer(self.norm_cfg, self.embed_dims)[1]
        self.with_masked_attn = self.masked_attn_cfg is not None
        if self.with_masked_attn:
            self.masked_attn = MultiheadAttention(**self.masked_attn_cfg)
            self.masked_norm = build_norm_layer(self.norm_cfg,
                                                self.embed_dims)[1]

    def dual_query_cross_attn(self, query: Tensor, query_pos: Tensor,
                              query_split: QuerySplit) -> Tensor:
        """(B, N_dn + N_c + N_l, C) -> same shape."""
        split = query_split
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

    def learnable_masked_attn(self, query: Tensor, query_pos: Tensor,
                              query_split: QuerySplit,
                              level_memory: Optional[Tensor] = None,
                              level_attn_mask: Optional[Tensor] = None
                              ) -> Tensor:
        """(B, N_dn + N_c + N_l, C) -> same shape; only the learnable queries
        change. ``level_memory`` (B, h*w, C) is one level of the encoder
        memory, ``level_attn_mask`` (B * num_heads, N_l, h*w), True =
        blocked."""
        split = query_split
        if not (self.with_masked_attn and split.num_learnable
                and level_memory is not None):
            return query
        learn = query[:, split.learnable]
        # the memory's keys carry no position of their own (the mask places
        # them); the query's is added here, as query_pos would, without
        # mmcv's warning about a missing key position
        learn = self.masked_attn(
            query=learn + query_pos[:, split.learnable],
            key=level_memory,
            value=level_memory,
            identity=learn,
            attn_mask=level_attn_mask)
        return torch.cat(
            [query[:, :split.learnable.start],
             self.masked_norm(learn)], dim=1)

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                value: Tensor,
                query_split: QuerySplit,
                self_attn_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                level_memory: Optional[Tensor] = None,
                level_attn_mask: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """
        Args:
            query, query_pos (Tensor): (B, N_dn + N_c + N_l, C).
            value (Tensor): encoder memory (B, sum(H_l*W_l), C).
            query_split (QuerySplit): (N_dn, N_c, N_l).
            self_attn_mask (Tensor, optional): (N, N) denoising mask, True =
                blocked.
            level_memory, level_attn_mask (Tensor, optional): the learnable
                queries' masked attention inputs, see
                :meth:`learnable_masked_attn`.
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
        query = self.learnable_masked_attn(query, query_pos, query_split,
                                           level_memory, level_attn_mask)
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
    self-attention config; ``False`` leaves it out of a mixed decoder, the
    query ablation's row without it). With ``layer_cfg.masked_attn_cfg`` the learnable
    queries of layer ``i`` also attend, masked by their mask from layer
    ``i - 1``, to memory level ``i % num_levels`` (coarse first), as in
    Mask2Former; this needs ``mask_features`` and ``mask_branch`` in
    :meth:`forward`. Unlike mmdet's DINO decoder, any
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
            elif layer_cfg['dual_attn_cfg'] is False:
                layer_cfg['dual_attn_cfg'] = None
        else:  # one query set: nothing to exchange
            layer_cfg['dual_attn_cfg'] = None
        if self.query_mode == 'conditional':  # no learnable queries
            layer_cfg['masked_attn_cfg'] = None
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
                mask_features: Optional[Tensor] = None,
                mask_branch: Optional[nn.Module] = None,
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
            key_padding_mask (Tensor, optional): (B, sum(H_l*W_l)), True on
                padding.
            mask_features (Tensor, optional): (B, C, H/4, W/4) and
                mask_branch (nn.Module, optional): C -> C mask embedding, the
                head's mask predictor, for the learnable queries' masked
                attention.

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
            level_inputs = {}
            if layer.with_masked_attn:
                if mask_features is None or mask_branch is None:
                    raise ValueError(
                        'layer_cfg.masked_attn_cfg needs mask_features and '
                        'mask_branch in MixedQueryDecoder.forward (set it to '
                        'None in a model without masks)')
                level_inputs = self.learnable_attn_inputs(
                    lid, query[:, query_split.learnable], value,
                    spatial_shapes, level_start_index, key_padding_mask,
                    mask_features, mask_branch, layer.masked_attn.num_heads)
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
                **level_inputs,
                **kwargs)
            new_reference_points = (
                reg_branches[lid](query) +
                inverse_sigmoid(reference_points, eps=1e-3)).sigmoid()
            reference_points = new_reference_points.detach()
            intermediate.append(self.norm(query))
            references.append(new_reference_points)
        return torch.stack(intermediate), torch.stack(references)

    def learnable_attn_inputs(self, lid: int, learnable: Tensor,
                              memory: Tensor, spatial_shapes: Tensor,
                              level_start_index: Tensor,
                              memory_mask: Optional[Tensor],
                              mask_features: Tensor, mask_branch: nn.Module,
                              num_heads: int) -> dict:
        """Layer ``lid``'s masked-attention inputs: memory level
        ``lid % num_levels`` (B, h*w, C) and the attention mask
        (B * num_heads, N_l, h*w) of the learnable queries (B, N_l, C)."""
        level = lid % spatial_shapes.size(0)
        h, w = level_sizes(spatial_shapes)[level]
        start = level_start_index[level]
        start = start if torch.jit.is_tracing() else int(start)
        level_mask = None if memory_mask is None else \
            memory_mask[:, start:start + h * w]
        return dict(
            level_memory=memory[:, start:start + h * w],
            level_attn_mask=self.learnable_attn_mask(
                learnable, mask_features, mask_branch, (h, w), level_mask,
                num_heads))

    def learnable_attn_mask(self, learnable: Tensor, mask_features: Tensor,
                            mask_branch: nn.Module, size: Tuple[int, int],
                            padding_mask: Optional[Tensor],
                            num_heads: int) -> Tensor:
        """Mask2Former's attention mask from the queries' current masks.

        Args:
            learnable (Tensor): (B, N_l, C) queries before this layer.
            mask_features (Tensor): (B, C, H/4, W/4).
            mask_branch (nn.Module): C -> C mask embedding.
            size (tuple[int]): (h, w) of the memory level read.
            padding_mask (Tensor, optional): (B, h*w), True on padding.
            num_heads (int): heads of the attention.

        Returns:
            Tensor: (B * num_heads, N_l, h*w) bool, True = blocked: outside
            the query's mask (probability < 0.5) or padding; a query whose
            mask covers nothing reads the whole valid area.
        """
        with torch.no_grad():
            masks = torch.einsum('bnc,bchw->bnhw',
                                 mask_branch(self.norm(learnable)),
                                 mask_features)
            masks = F.interpolate(
                masks, size=size, mode='bilinear', align_corners=False)
            blocked = masks.flatten(2) < 0
            if padding_mask is not None:
                pad = padding_mask[:, None].expand_as(blocked)
                blocked = blocked | pad
                blocked = torch.where(blocked.all(-1, keepdim=True), pad,
                                      blocked)
            else:
                blocked = blocked & ~blocked.all(-1, keepdim=True)
        return blocked.repeat_interleave(num_heads, 0)

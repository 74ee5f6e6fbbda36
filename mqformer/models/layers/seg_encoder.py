"""MaskDINO-style segmentation encoder on top of mmdet's MSDeformAttnPixelDecoder."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor

from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers import MSDeformAttnPixelDecoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType

from .level_geometry import (encoder_reference_points, spatial_shapes_of,
                             split_levels)


@MODELS.register_module()
class MQSegEncoder(MSDeformAttnPixelDecoder):
    """Multi-scale deformable-attention encoder with extra levels and mask features.

    mmdet's :class:`MSDeformAttnPixelDecoder` encodes the coarsest backbone levels
    with deformable self-attention and builds a 1/4 resolution mask feature map
    through an FPN. As in MaskDINO, ``num_extra_levels`` stride-2 convolutions
    on the last backbone level add coarser levels, and the encoded levels are
    also returned flattened so that query selection can read them.

    Unlike the parent (which never masks padding), a batch of differently
    sized images is encoded as mmdet's ``DeformableDETR`` does: a padding
    mask per level, positions and reference points normalised to each
    image's valid area, valid ratios, and padded keys masked out.

    The encoder's ``layer_cfg.self_attn_cfg.num_levels`` counts the encoded
    levels including the extra ones.

    Args:
        in_channels (Sequence[int]): backbone channels per level (fine->coarse).
        strides (Sequence[int]): backbone strides per level.
        num_extra_levels (int): extra coarser levels. Defaults to 1.
        feat_channels (int): encoder width. Other args as in the parent.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 num_extra_levels: int = 1,
                 feat_channels: int = 256,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 encoder: ConfigType = None,
                 **kwargs) -> None:
        in_channels, strides = list(in_channels), list(strides)
        num_enc = encoder['layer_cfg']['self_attn_cfg']['num_levels']
        if num_enc > len(in_channels) - 1 + num_extra_levels:
            raise ValueError(
                f'encoder num_levels={num_enc} needs at least {num_enc} coarse '
                f'levels plus the finest one for mask features, but there are '
                f'{len(in_channels)} backbone + {num_extra_levels} extra levels')
        parent_in = in_channels + [feat_channels] * num_extra_levels
        parent_strides = strides + [strides[-1] * 2**(i + 1)
                                    for i in range(num_extra_levels)]
        kwargs.setdefault('num_outs', num_enc)
        super().__init__(
            in_channels=parent_in,
            strides=parent_strides,
            feat_channels=feat_channels,
            norm_cfg=norm_cfg,
            encoder=encoder,
            **kwargs)
        self.num_extra_levels = num_extra_levels
        self.extra_convs = torch.nn.ModuleList([
            ConvModule(
                in_channels[-1] if i == 0 else feat_channels,
                feat_channels,
                kernel_size=3,
                stride=2,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=None) for i in range(num_extra_levels)
        ])

    def forward(self, feats: List[Tensor],
                img_masks: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """
        Args:
            feats (list[Tensor]): backbone levels, each (B, C_l, H_l, W_l).
            img_masks (Tensor, optional): (B, H, W) at the padded input size,
                True on padding (mmdet's ``DeformableDETR`` convention).
                ``None``: no padding.

        Returns:
            dict: ``mask_features`` (B, C, H/4, W/4); ``multi_scale_features``,
            the encoded levels coarse->fine, each (B, C, H_l, W_l); ``memory``,
            them flattened (B, S, C), S = sum(H_l*W_l); ``memory_mask``
            (B, S), True on padding (``None`` without ``img_masks``);
            ``spatial_shapes`` (num_levels, 2) as (h, w);
            ``level_start_index`` (num_levels, ); ``valid_ratios``
            (B, num_levels, 2) as (w, h) fractions of each level that hold
            the image.
        """
        feats = list(feats)
        x = feats[-1]
        for conv in self.extra_convs:
            x = conv(x)
            feats.append(x)
        enc = self.encode_levels(feats, img_masks)
        mask_features, ms_feats = self.fpn(feats, enc['multi_scale_features'])
        enc.update(mask_features=mask_features, multi_scale_features=ms_feats)
        return enc

    @staticmethod
    def level_masks(img_masks: Optional[Tensor],
                    feat: Tensor) -> Tensor:
        """(B, H, W) input padding mask -> (B, h, w) bool mask of ``feat``."""
        if img_masks is None:
            return feat.new_zeros((feat.size(0), ) + feat.shape[-2:],
                                  dtype=torch.bool)
        return F.interpolate(img_masks[None].float(),
                             size=feat.shape[-2:]).to(torch.bool)[0]

    def encode_levels(self, feats: List[Tensor],
                      img_masks: Optional[Tensor]) -> Dict[str, Tensor]:
        """Deformable self-attention over the coarsest ``num_encoder_levels``
        levels with padding masked: positions, reference points and the
        attention's sampling are normalised to each image's valid area, as
        in mmdet's ``DeformableDETR``. Returns the memory and its geometry
        (keys as in :meth:`forward`) and the encoded levels coarse->fine."""
        B = feats[0].size(0)
        inputs, pos, masks, shapes = [], [], [], []
        for i in range(self.num_encoder_levels):
            level_idx = self.num_input_levels - i - 1
            feat = feats[level_idx]
            mask = self.level_masks(img_masks, feat)
            level_pos = self.postional_encoding(mask) + \
                self.level_encoding.weight[i].view(1, -1, 1, 1)
            inputs.append(self.input_convs[i](feat).flatten(2).transpose(1, 2))
            pos.append(level_pos.flatten(2).transpose(1, 2))
            masks.append(mask)
            shapes.append(feat.shape[-2:])
        spatial_shapes = spatial_shapes_of(shapes, feats[0].device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack(
            [DeformableDETR.get_valid_ratio(m) for m in masks], 1)
        memory_mask = torch.cat([m.flatten(1) for m in masks], 1)
        reference_points = encoder_reference_points(
            spatial_shapes, valid_ratios, device=feats[0].device)
        memory = self.encoder(
            query=torch.cat(inputs, 1),
            query_pos=torch.cat(pos, 1),
            key_padding_mask=memory_mask,
            spatial_shapes=spatial_shapes,
            reference_points=reference_points,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios)
        levels = split_levels(memory, shapes)
        levels = [
            lvl.transpose(1, 2).reshape(B, -1, h, w)
            for lvl, (h, w) in zip(levels, shapes)
        ]
        return dict(
            memory=memory,
            memory_mask=memory_mask if img_masks is not None else None,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios,
            multi_scale_features=levels)

    def fpn(self, feats: List[Tensor], encoded: List[Tensor]
            ) -> Tuple[Tensor, List[Tensor]]:
        """The parent's FPN over the levels the encoder did not see ->
        (B, C, H/4, W/4) mask features and the encoded levels coarse->fine."""
        outs = list(encoded)
        for i in range(self.num_input_levels - self.num_encoder_levels - 1,
                       -1, -1):
            cur = self.lateral_convs[i](feats[i])
            y = cur + F.interpolate(outs[-1], size=cur.shape[-2:],
                                    mode='bilinear', align_corners=False)
            outs.append(self.output_convs[i](y))
        return self.mask_feature(outs[-1]), outs[:self.num_encoder_levels]

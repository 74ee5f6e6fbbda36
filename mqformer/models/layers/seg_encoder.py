"""MaskDINO-style segmentation encoder on top of mmdet's MSDeformAttnPixelDecoder."""
from typing import Dict, List, Sequence

import torch
from mmcv.cnn import ConvModule
from torch import Tensor

from mmdet.models.layers import MSDeformAttnPixelDecoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType


@MODELS.register_module()
class MQSegEncoder(MSDeformAttnPixelDecoder):
    """Multi-scale deformable-attention encoder with extra levels and mask features.

    mmdet's :class:`MSDeformAttnPixelDecoder` encodes the coarsest backbone levels
    with deformable self-attention and builds a 1/4 resolution mask feature map
    through an FPN. As in MaskDINO, ``num_extra_levels`` stride-2 convolutions
    on the last backbone level add coarser levels, and the encoded levels are
    also returned flattened so that query selection can read them.

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

    def forward(self, feats: List[Tensor]) -> Dict[str, Tensor]:
        """
        Args:
            feats (list[Tensor]): backbone levels, each (B, C_l, H_l, W_l).

        Returns:
            dict: ``mask_features`` (B, C, H/4, W/4); ``multi_scale_features``,
            the encoded levels coarse->fine, each (B, C, H_l, W_l); ``memory``,
            them flattened (B, sum(H_l*W_l), C); ``spatial_shapes``
            (num_levels, 2) as (h, w); ``level_start_index`` (num_levels, );
            ``valid_ratios`` (B, num_levels, 2) (ones: padding is not masked,
            as in Mask2Former).
        """
        feats = list(feats)
        x = feats[-1]
        for conv in self.extra_convs:
            x = conv(x)
            feats.append(x)
        mask_features, ms_feats = super().forward(feats)
        ms_feats = ms_feats[:self.num_encoder_levels]
        spatial_shapes = torch.as_tensor([f.shape[-2:] for f in ms_feats],
                                         dtype=torch.long,
                                         device=mask_features.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        memory = torch.cat([f.flatten(2).transpose(1, 2) for f in ms_feats], 1)
        valid_ratios = memory.new_ones(memory.size(0), len(ms_feats), 2)
        return dict(
            mask_features=mask_features,
            multi_scale_features=ms_feats,
            memory=memory,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios)

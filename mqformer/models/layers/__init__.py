from .binary_point_sample import binary_point_sample
from .deformable_attention import (CPUMultiScaleDeformableAttention,
                                   multi_scale_deformable_attn_cpu,
                                   use_cpu_deformable_attention)
from .fast_attention import build_with_fast_attention
from .level_geometry import (encoder_output_proposals,
                             encoder_reference_points)
from .mixed_query_decoder import (QUERY_MODES, MixedQueryDecoder,
                                  MixedQueryDecoderLayer, check_query_mode)
from .query_split import QuerySplit
from .sdpa_attention import SDPAMultiheadAttention, use_sdpa_attention
from .seg_encoder import MQSegEncoder

__all__ = ['CPUMultiScaleDeformableAttention', 'MQSegEncoder',
           'MixedQueryDecoder', 'MixedQueryDecoderLayer',
           'QUERY_MODES', 'QuerySplit', 'SDPAMultiheadAttention',
           'binary_point_sample',
           'build_with_fast_attention', 'encoder_output_proposals',
           'encoder_reference_points',
           'check_query_mode',
           'multi_scale_deformable_attn_cpu', 'use_cpu_deformable_attention',
           'use_sdpa_attention']

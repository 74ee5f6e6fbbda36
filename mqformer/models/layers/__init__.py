from .mixed_query_decoder import (QUERY_MODES, MixedQueryDecoder,
                                  MixedQueryDecoderLayer, check_query_mode)
from .query_split import QuerySplit
from .seg_encoder import MQSegEncoder

__all__ = ['MQSegEncoder', 'MixedQueryDecoder', 'MixedQueryDecoderLayer',
           'QUERY_MODES', 'QuerySplit', 'check_query_mode']

from .match_costs import BinaryCrossEntropyLossCost
from .open_vocab_dn import OpenVocabCdnQueryGenerator
from .query_role_cost import QueryRoleCost
from .thing_box_cost import ThingBoxCost, thing_box_costs

__all__ = [
    'BinaryCrossEntropyLossCost', 'OpenVocabCdnQueryGenerator', 'QueryRoleCost',
    'ThingBoxCost', 'thing_box_costs'
]

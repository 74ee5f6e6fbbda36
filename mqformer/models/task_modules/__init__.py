from .match_costs import BinaryCrossEntropyLossCost
from .open_vocab_dn import OpenVocabCdnQueryGenerator
from .thing_box_cost import ThingBoxCost, thing_box_costs

__all__ = [
    'BinaryCrossEntropyLossCost', 'OpenVocabCdnQueryGenerator',
    'ThingBoxCost', 'thing_box_costs'
]

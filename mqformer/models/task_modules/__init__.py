from .match_costs import BinaryCrossEntropyLossCost
from .open_vocab_dn import OpenVocabCdnQueryGenerator

__all__ = ['BinaryCrossEntropyLossCost', 'OpenVocabCdnQueryGenerator']

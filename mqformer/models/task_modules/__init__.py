from .open_vocab_dn import OpenVocabCdnQueryGenerator

__all__ = ['OpenVocabCdnQueryGenerator']

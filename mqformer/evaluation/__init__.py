from .matching_share import (MatchingShare, checkpoint_matching_share,
                             record_matching)
from .metrics import *  # noqa: F401,F403
from .proposal_recall import (ProposalRecall, checkpoint_proposal_recall,
                              mask_recall)
from .query_attribution import (attribute_segments, explain_misses,
                                summarize, summarize_misses)
from .seginw_evaluator import SeginWEvaluator

__all__ = [
    'SeginWEvaluator', 'attribute_segments', 'explain_misses', 'summarize',
    'summarize_misses', 'ProposalRecall', 'checkpoint_proposal_recall',
    'mask_recall', 'MatchingShare', 'checkpoint_matching_share',
    'record_matching'
]

"""QuerySplit: how the decoder's query sequence is laid out."""
from typing import NamedTuple


class QuerySplit(NamedTuple):
    """Counts of the three query groups, laid out in this order along the
    query dimension: ``[denoising | conditional | learnable]``.

    The single source of the layout: :meth:`MQFormer.pre_decoder` makes it
    once per batch (fewer conditional queries than configured where the
    images have fewer valid encoder proposals), and the decoder layers, the
    losses and the predictions (``query_learnable``, the samples'
    ``num_conditional_queries``) read it; nothing recomputes it from the
    configured counts.
    """
    num_dn: int = 0
    num_conditional: int = 0
    num_learnable: int = 0

    @property
    def num_matching(self) -> int:
        """Queries that take part in Hungarian matching (N_c + N_l)."""
        return self.num_conditional + self.num_learnable

    @property
    def dn(self) -> slice:
        return slice(0, self.num_dn)

    @property
    def matching(self) -> slice:
        return slice(self.num_dn, self.num_dn + self.num_matching)

    @property
    def conditional(self) -> slice:
        return slice(self.num_dn, self.num_dn + self.num_conditional)

    @property
    def learnable(self) -> slice:
        start = self.num_dn + self.num_conditional
        return slice(start, start + self.num_learnable)

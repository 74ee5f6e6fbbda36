"""The paper's division of labour between the two query types (section 4.1:
conditional queries make the things, learnable ones the stuff) as a
matching cost."""
from typing import Optional, Union

from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class QueryRoleCost(BaseMatchCost):
    """Stuff to the learnable queries: ``weight`` for a conditional query
    matched to stuff ground truth, 0 otherwise.

    Reads ``pred_instances.is_learnable`` (N, ) bool (set by :class:`MQHead`
    from the query layout) and ``gt_instances.is_thing`` (M, ) bool (the
    sample's ``text_is_thing``). The cost adds the same value to every row of
    a stuff column unless the set holds both query types, so it changes
    only mixed sets' assignments: learnable-only and conditional-only sets,
    and the encoder proposals, are matched as without it. A large weight
    (e.g. 100, above any sum of the other costs) makes it a constraint
    where the image has no more stuff than learnable queries; things stay
    open to both types. Without either flag the cost is 0.

    Args:
        weight (float): the cost of a conditional query on stuff.
    """

    def __init__(self, weight: Union[float, int] = 100.) -> None:
        super().__init__(weight=weight)

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """Returns:
            Tensor: (num_preds, num_gts) cost.
        """
        scores = pred_instances.scores
        is_learnable = pred_instances.get('is_learnable', None)
        is_thing = gt_instances.get('is_thing', None)
        num_gts = len(gt_instances)
        if is_learnable is None or is_thing is None:
            return scores.new_zeros((len(scores), num_gts))
        on_stuff = ~is_learnable[:, None] & ~is_thing[None, :]  # (N, M)
        return on_stuff.to(scores.dtype) * self.weight

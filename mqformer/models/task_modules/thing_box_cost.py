"""MaskDINO's decoupled box prediction, matching side: box costs only for
ground truth that has a box (things), not for stuff."""
from typing import Optional, Union

from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import TASK_UTILS
from mmdet.utils import ConfigType

BOX_COSTS = ('BBoxL1Cost', 'IoUCost')


@TASK_UTILS.register_module()
class ThingBoxCost(BaseMatchCost):
    """Wraps a box match cost so that it counts only for things.

    A stuff region (sky, road) has no meaningful box: often the whole image,
    or the hull of several disjoint parts. Mask DINO drops the box terms of
    stuff from matching and from the loss (its panoptic "decoupled box
    prediction"). Here the columns of ground truth with
    ``gt_instances.is_thing == False`` get the mean of the thing columns (0
    when the image has no thing), a constant that favours no query (a 0 would
    draw the solver to stuff); class and mask costs decide stuff. Without
    ``is_thing`` the wrapped cost is returned unchanged.

    Args:
        cost (dict): the box cost, e.g. ``dict(type='BBoxL1Cost', ...)``;
            its own ``weight`` applies.
    """

    def __init__(self, cost: ConfigType,
                 weight: Union[float, int] = 1.) -> None:
        super().__init__(weight=weight)
        self.cost = TASK_UTILS.build(cost)

    def __call__(self,
                 pred_instances: InstanceData,
                 gt_instances: InstanceData,
                 img_meta: Optional[dict] = None,
                 **kwargs) -> Tensor:
        """Returns:
            Tensor: (num_preds, num_gts) cost.
        """
        cost = self.cost(pred_instances, gt_instances, img_meta, **kwargs)
        is_thing = gt_instances.get('is_thing', None)
        if is_thing is None or bool(is_thing.all()):
            return cost * self.weight
        cost[:, ~is_thing] = cost[:, is_thing].mean() if is_thing.any() else 0
        return cost * self.weight


def thing_box_costs(match_costs: list) -> list:
    """Match cost configs with every box cost wrapped in
    :class:`ThingBoxCost` (the others unchanged)."""
    return [
        dict(type='ThingBoxCost', cost=c) if c['type'] in BOX_COSTS else c
        for c in match_costs
    ]

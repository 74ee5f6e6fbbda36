"""SeginW: mask AP per set and the unweighted mean over the sets."""
from mmengine.dist import broadcast_object_list, is_main_process

from mmdet.evaluation import MultiDatasetsEvaluator
from mmdet.registry import EVALUATOR


@EVALUATOR.register_module()
class SeginWEvaluator(MultiDatasetsEvaluator):
    """mmdet's ``MultiDatasetsEvaluator`` over a ``ConcatDataset`` of SeginW
    sets (one ``CocoMetric`` and prefix per set) that also reports
    ``seginw/mean_segm_mAP``: the unweighted mean of the sets' mask AP (each
    set counts once, whatever its size). Run with test batch size 1.
    """

    def evaluate(self, size: int) -> dict:
        results = super().evaluate(size)
        if is_main_process():
            aps = [v for k, v in results.items()
                   if k.endswith('/segm_mAP') and v >= 0]
            results['seginw/mean_segm_mAP'] = sum(aps) / len(aps) if aps \
                else -1.0
            results['seginw/num_sets'] = len(aps)
        out = [results]
        broadcast_object_list(out)
        return out[0]

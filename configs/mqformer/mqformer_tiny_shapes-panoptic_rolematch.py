# The tiny query ablation's matching row: mixed queries whose Hungarian
# matching gives the stuff to the learnable queries (QueryRoleCost: the
# paper's section 4.1 division of labour, conditional queries on things and
# learnable ones on stuff, as a constraint instead of an outcome).
_base_ = './mqformer_tiny_shapes-panoptic.py'
# a config list replaces the base's: the base's five costs restated, then the
# role cost (tests/evaluation/test_query_ablation.py checks they stay equal)
model = dict(
    train_cfg=dict(
        assigner=dict(match_costs=[
            dict(type='FocalLossCost', weight=4.0),
            dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='IoUCost', iou_mode='giou', weight=2.0),
            dict(type='BinaryCrossEntropyLossCost', weight=5.0),
            dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
            dict(type='QueryRoleCost', weight=100.0)
        ])))

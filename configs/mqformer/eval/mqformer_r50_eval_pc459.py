# Evaluate an MQ-Former R50 checkpoint on pc459:
#   python tools/test.py configs/mqformer/eval/mqformer_r50_eval_pc459.py CKPT
_base_ = [
    '../../_base_/models/mqformer_r50.py', '../../_base_/default_runtime.py',
    '../../_base_/datasets/pascal_context.py'
]
model = dict(test_cfg=dict(semantic_on=True, instance_on=False, text_chunk=128))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset={{_base_.pc459_val}})
test_evaluator = {{_base_.pc_evaluator}}
test_cfg = dict(type='TestLoop')

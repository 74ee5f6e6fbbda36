# The GPU check's end-to-end run (run_gpu_check.sh): the demo's tiny model on
# the shapes world's panoptic data, `tools/train.py --amp` on CUDA, 400
# iterations, evaluated at the end. The text model is all-MiniLM-L6-v2's
# architecture with random weights (the pretrained weights do not travel to
# the GPU machine), so its scores are not the demo's.
_base_ = ['../../configs/mqformer/mqformer_tiny_shapes-panoptic.py']
tokenizer = '.whl/minilm_tokenizer'
model = dict(
    text_encoder=dict(
        _delete_=True,
        type='HFTextEncoder',
        config=dict(type='BertConfig', hidden_size=384, num_hidden_layers=6,
                    num_attention_heads=12, intermediate_size=1536,
                    vocab_size=30522),
        tokenizer_name_or_path=tokenizer,
        frozen=True,
        templates='none'))
train_cfg = dict(max_iters=400, val_interval=400)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, milestones=[340], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=400))

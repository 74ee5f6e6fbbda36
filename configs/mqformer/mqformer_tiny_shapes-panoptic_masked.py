# The tiny panoptic model with Mask2Former's masked attention for the
# learnable queries (fair_comparison.py's mqformer_masked row): in decoder
# layer i they also read memory level i % num_levels where their mask from
# the layer before is >= 0.5; same widths as the decoder's self-attention.
_base_ = './mqformer_tiny_shapes-panoptic.py'
model = dict(
    decoder=dict(
        layer_cfg=dict(
            masked_attn_cfg={{_base_.model.decoder.layer_cfg.self_attn_cfg}})))

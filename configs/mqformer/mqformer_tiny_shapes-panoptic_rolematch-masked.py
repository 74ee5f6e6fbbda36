# The stuff made as Mask2Former makes it, inside the mixed set: the matching
# gives the stuff to the learnable queries (QueryRoleCost, as in
# mqformer_tiny_shapes-panoptic_rolematch.py) and those queries read their
# whole mask by masked attention (as in mqformer_tiny_shapes-panoptic_masked.py),
# while the conditional queries keep the things and the deformable attention
# around their boxes (fair_comparison.py's mqformer_rolematch_masked row).
_base_ = './mqformer_tiny_shapes-panoptic_rolematch.py'
model = dict(
    decoder=dict(
        layer_cfg=dict(
            masked_attn_cfg={{_base_.model.decoder.layer_cfg.self_attn_cfg}})))

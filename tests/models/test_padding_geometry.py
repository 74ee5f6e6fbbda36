"""One frame for boxes and attention in padded batches (mmdet DeformableDETR's
convention): proposals never come from padding, reference boxes sample inside
their own image, and every box is normalised to its image's valid area."""
import torch

from .test_mqformer import batch, build_model, preprocess

SIZES = ((64, 96), (128, 128))  # image 0 is padded to 128 x 128


def encode(model, data):
    feats = model.extract_feat(data['inputs'])
    enc_in, text = model.pre_transformer(feats, data['data_samples'])
    return enc_in, text, model.forward_encoder(**enc_in)


def test_padding_mask_and_valid_ratios():
    model = build_model('mixed').eval()
    data = preprocess(model, batch(sizes=SIZES), False)
    assert tuple(data['inputs'].shape[-2:]) == (128, 128)
    with torch.no_grad():
        enc_in, _, enc = encode(model, data)
    masks = enc_in['img_masks']
    assert masks[0, :64, :96].logical_not().all() and masks[0, 64:].all()
    assert masks[0, :, 96:].all() and not masks[1].any()
    # per level (w, h): image 0 fills 3/4 of the width, 1/2 of the height
    assert torch.allclose(enc['valid_ratios'][0],
                          torch.tensor([0.75, 0.5]).expand_as(
                              enc['valid_ratios'][0]))
    assert torch.allclose(enc['valid_ratios'][1],
                          torch.ones_like(enc['valid_ratios'][1]))
    assert enc['memory_mask'][1].logical_not().all()
    assert enc['memory_mask'][0].float().mean() > 0.5


def test_proposals_never_come_from_padding():
    """Even when padded positions score highest, top-k skips them, and every
    proposal is normalised to its own image (centres inside (0, 1))."""
    model = build_model('mixed').eval()
    data = preprocess(model, batch(sizes=SIZES), False)
    with torch.no_grad():
        _, text, enc = encode(model, data)
        memory_mask = enc['memory_mask']
        _, proposals = model.gen_encoder_output_proposals(
            enc['memory'], memory_mask, enc['spatial_shapes'])
        T = text['text_mask'].size(1)
        enc_class = torch.randn(*memory_mask.shape, T)
        enc_class[memory_mask] = 100.0  # padding would win every text
        model.dqs_cfg = None
        topk = model.topk_proposals(enc_class, text['text_mask'], proposals)
        # distinct selection (NMS on the regressed boxes or on the masks)
        # neither
        model.dqs_cfg = dict(type='nms', iou_threshold=0.8)
        distinct = model.topk_proposals(enc_class, text['text_mask'],
                                        proposals, torch.randn_like(proposals))
        model.dqs_cfg = dict(type='mask_nms', iou_threshold=0.8)
        by_mask = model.topk_proposals(
            enc_class, text['text_mask'], proposals,
            candidate_masks=lambda idx, rows: torch.randn(*idx.shape, 8, 8))
    assert not memory_mask.gather(1, topk).any()
    assert not memory_mask.gather(1, distinct).any()
    assert not memory_mask.gather(1, by_mask).any()
    chosen = proposals.gather(1, topk[..., None].expand(-1, -1, 4)).sigmoid()
    assert torch.isfinite(chosen).all()
    # image 0's finest level spans its valid area in its own frame
    centres = proposals[0][~memory_mask[0]].sigmoid()[:, :2]
    centres = centres[torch.isfinite(centres).all(1)]
    assert centres.max() > 0.9 and centres.min() < 0.1


def test_reference_box_over_valid_area_samples_inside_the_image(monkeypatch):
    """A learnable reference box covering image 0's valid area makes the
    decoder's deformable attention sample only inside image 0 (in the padded
    frame: x < 0.75, y < 0.5), on every level."""
    # the function the model's deformable attention runs off CUDA
    import mqformer.models.layers.deformable_attention as msda
    model = build_model('learnable', dn=False).eval()
    with torch.no_grad():
        full = torch.logit(torch.tensor([0.5, 0.5, 0.98, 0.98]))
        model.learnable_reference.weight[:] = full
        # offsets from the initial grid only: within half the box around it
        for layer in model.decoder.layers:
            layer.cross_attn.sampling_offsets.weight.zero_()
        for branch in model.bbox_head.reg_branches:  # boxes stay put
            branch.layers[-1].weight.zero_()
            branch.layers[-1].bias.zero_()
    seen = []
    real = msda.multi_scale_deformable_attn_cpu

    def record(value, shapes, locations, weights):
        seen.append(locations.detach().clone())
        return real(value, shapes, locations, weights)

    data = preprocess(model, batch(sizes=SIZES), False)
    with torch.no_grad():
        _, text, enc = encode(model, data)
        dec_in, _ = model.pre_decoder(**enc, **text,
                                      batch_data_samples=data['data_samples'])
        monkeypatch.setattr(msda, 'multi_scale_deformable_attn_cpu', record)
        model.forward_decoder(memory=enc['memory'],
                              spatial_shapes=enc['spatial_shapes'],
                              level_start_index=enc['level_start_index'],
                              valid_ratios=enc['valid_ratios'],
                              memory_mask=enc['memory_mask'], **dec_in)
    assert len(seen) == model.decoder.num_layers
    for loc in seen:  # (B, N, heads, levels, points, 2) as (x, y)
        x, y = loc[0, ..., 0], loc[0, ..., 1]
        assert x.max() <= 0.75 + 1e-4 and y.max() <= 0.5 + 1e-4
        assert x.min() >= -1e-4 and y.min() >= -1e-4
        # the unpadded image spreads over its whole frame
        assert loc[1, ..., 0].max() > 0.9 and loc[1, ..., 1].max() > 0.9


def test_gt_dn_and_predicted_boxes_share_one_frame():
    """A ground-truth box covering image 0 is (0.5, 0.5, 1, 1) for the
    denoising queries (no noise), and the fusion head maps that normalised
    box back to the full image, not to the padded batch."""
    from mmengine.structures import InstanceData
    model = build_model('mixed', dn=True)
    model.dn_query_generator.box_noise_scale = 1e-6  # DINO asserts > 0
    model.dn_query_generator.label_noise_scale = 0.0
    data = preprocess(model, batch(sizes=SIZES), True)
    samples = data['data_samples']
    samples[0].gt_instances = InstanceData(
        labels=torch.tensor([0]), bboxes=torch.tensor([[0., 0., 96., 64.]]))
    text_embeds = torch.randn(2, 8, model.embed_dims)
    text_mask = torch.ones(2, 8, dtype=torch.bool)
    _, dn_boxes, _, _ = model.dn_query_generator(samples, text_embeds,
                                                 text_mask)
    assert torch.allclose(dn_boxes[0, 0].sigmoid(),
                          torch.tensor([0.5, 0.5, 1.0, 1.0]), atol=1e-3)
    boxes = model.fusion_head.boxes_to_image(
        torch.tensor([[0.5, 0.5, 1.0, 1.0]]), samples[0].metainfo, False)
    assert torch.allclose(boxes, torch.tensor([[0., 0., 96., 64.]]))


def test_mask_boxes_are_normalised_to_the_valid_area():
    """Mask-enhanced anchors: a mask covering image 0's valid area (and
    spilling into padding) gives the full-image box."""
    from mqformer.models.detectors.mqformer import MQFormer
    model = build_model('mixed')
    data = preprocess(model, batch(sizes=SIZES), False)
    logits = torch.full((2, 2, 32, 32), -1.0)
    logits[0, 0] = 1.0               # everything, padding included
    logits[0, 1, 4:8, 12:24] = 1.0   # a patch: rows 16-32, cols 48-96 px
    logits[1, 1, :16, :16] = 1.0
    samples = data['data_samples']
    boxes, found = MQFormer.mask_boxes(
        logits, MQFormer.image_shapes(samples),
        samples[0].batch_input_shape)
    assert found.tolist() == [[True, True], [False, True]]
    assert torch.allclose(boxes[0, 0], torch.tensor([0.5, 0.5, 1.0, 1.0]))
    assert torch.allclose(boxes[0, 1], torch.tensor([0.75, 0.375, 0.5, 0.25]))
    assert torch.allclose(boxes[1, 1], torch.tensor([0.25, 0.25, 0.5, 0.5]))

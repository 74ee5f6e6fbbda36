"""The level geometry (level_geometry.py): the same values as mmdet's
DeformableDETR, the proposals' level order (MaskDINO's), and the encoder's
level order it relies on."""
import torch

from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers.transformer.deformable_detr_layers import \
    DeformableDetrTransformerEncoder

from mqformer.models.layers import (encoder_output_proposals,
                                    encoder_reference_points)
from .test_mqformer import batch, build_model, preprocess

SHAPES = torch.tensor([[4, 6], [8, 12], [16, 24]])  # coarse -> fine


def memory_and_mask():
    S = int(SHAPES.prod(1).sum())
    g = torch.Generator().manual_seed(0)
    memory = torch.randn(2, S, 8, generator=g)
    mask = torch.zeros(2, S, dtype=torch.bool)
    start = 0
    for h, w in SHAPES.tolist():  # image 1: the right third is padding
        m = torch.zeros(h, w, dtype=torch.bool)
        m[:, w * 2 // 3:] = True
        mask[1, start:start + h * w] = m.flatten()
        start += h * w
    return memory, mask


def test_same_values_as_mmdet():
    memory, mask = memory_and_mask()

    class Stub:  # mmdet's method without its output projection
        memory_trans_fc = memory_trans_norm = staticmethod(lambda x: x)

    for m in (mask, None):
        ref_mem, ref_prop = DeformableDETR.gen_encoder_output_proposals(
            Stub(), memory, m, SHAPES)
        out_mem, out_prop = encoder_output_proposals(memory, m, SHAPES)
        assert torch.equal(out_mem, ref_mem) and torch.equal(out_prop,
                                                             ref_prop)
    ratios = torch.rand(2, 3, 2) * 0.5 + 0.5
    assert torch.equal(
        encoder_reference_points(SHAPES, ratios, 'cpu'),
        DeformableDetrTransformerEncoder.get_encoder_reference_points(
            SHAPES, ratios, 'cpu'))


def test_proposal_sides_follow_the_memory_order():
    """Level l of the memory gets side 0.05 * 2 ** l: with MQSegEncoder's
    coarse-to-fine memory the coarsest level gets the smallest side, as in
    MaskDINO (whose encoder also lays levels out coarse to fine)."""
    memory, _ = memory_and_mask()
    _, proposals = encoder_output_proposals(memory, None, SHAPES)
    sides, start = [], 0
    for h, w in SHAPES.tolist():
        wh = proposals[0, start:start + h * w, 2:].sigmoid()
        wh = wh[torch.isfinite(proposals[0, start:start + h * w]).all(1)]
        sides.append(wh.mean().item())
        start += h * w
    assert [round(s, 4) for s in sides] == [0.05, 0.1, 0.2]


def test_encoder_lays_levels_out_coarse_to_fine():
    model = build_model('mixed').eval()
    data = preprocess(model, batch(sizes=((128, 128), (128, 128))), False)
    with torch.no_grad():
        enc = model.forward_encoder(model.extract_feat(data['inputs']))
    areas = enc['spatial_shapes'].prod(1).tolist()
    assert areas == sorted(areas) and areas[0] < areas[-1]

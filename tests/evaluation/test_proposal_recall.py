"""The proposal recall of the query ablation's mechanism study: mask IoU
recall on constructed masks with a known answer, the selected proposals'
masks of a real model at each image's valid size, things and stuff apart."""
import torch

from mqformer.evaluation import proposal_recall as pr
from models.test_mqformer import batch, build_model, preprocess


def square(y, x, s, size=30):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[y:y + s, x:x + s] = True
    return m


def test_mask_recall_known_answer():
    gt = torch.stack([square(0, 0, 10), square(10, 10, 10)])
    # the first exactly; the second at IoU 50 / 150 = 1/3
    pred = torch.stack([square(0, 0, 10), square(10, 15, 10),
                        square(0, 15, 5)])
    assert pr.mask_recall(pred, gt).tolist() == [True, False]
    assert pr.mask_recall(pred, gt, iou_thr=0.3).tolist() == [True, True]
    assert pr.mask_recall(pred[:0], gt).tolist() == [False, False]
    assert pr.mask_recall(pred, gt[:0]).tolist() == []


def test_recall_counts_things_and_stuff_apart(monkeypatch):
    """Two images whose selected masks are known: 1 of 2 things and 1 of 1
    stuff found in the first, the one thing of the second missed."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    samples = []
    for gts, labels in (([square(0, 0, 10), square(10, 10, 10),
                          square(0, 10, 10)], [0, 1, 2]),
                        ([square(5, 5, 10)], [0])):
        s = DetDataSample(metainfo=dict(img_shape=(30, 30),
                                        text_is_thing=[True, True, False]))
        s.gt_instances = InstanceData(masks=torch.stack(gts),
                                      labels=torch.tensor(labels))
        samples.append(s)
    # logits at half the masks' size: resized to them
    selected = [torch.stack([square(0, 0, 10), square(0, 10, 10)]),
                torch.stack([square(0, 0, 4)])]
    selected = [m[:, ::2, ::2].float() * 2 - 1 for m in selected]
    monkeypatch.setattr(pr, 'selected_proposal_masks',
                        lambda model, x, data: selected)
    recall = pr.ProposalRecall()
    recall.process(None, None, samples)
    assert recall.compute() == {'thing recall %': 33.33, 'thing segments': 3,
                                'stuff recall %': 100.0, 'stuff segments': 1}


def test_selected_proposal_masks_of_a_model_at_each_valid_size():
    model = build_model('mixed').eval()
    data = preprocess(model, batch(sizes=((64, 96), (128, 128))), True)
    masks = pr.selected_proposal_masks(model, data['inputs'],
                                       data['data_samples'])
    assert [tuple(m.shape) for m in masks] == [(20, 64, 96), (20, 128, 128)]
    assert all(m.dtype == torch.float32 for m in masks)  # logits
    recall = pr.ProposalRecall()
    recall.process(model, data['inputs'], data['data_samples'])
    out = recall.compute()
    n = sum(len(s.gt_instances) for s in data['data_samples'])
    assert out['thing segments'] + out['stuff segments'] == n > 0

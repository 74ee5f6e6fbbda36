"""Query attribution counts on a constructed case with a known answer."""
import numpy as np


def test_attribution_on_a_known_case():
    from mqformer.evaluation import attribute_segments, summarize
    H, W = 10, 10
    gt = np.zeros((4, H, W), bool)
    gt[0, :, :5] = True          # stuff A: left half
    gt[1, :5, 5:] = True         # thing B: top right
    gt[2, 5:, 5:8] = True        # thing C: bottom right, left part
    gt[3, 5:, 8:] = True         # stuff D: bottom right strip
    pan = np.full((H, W), 99)    # void elsewhere
    qmap = np.full((H, W), -1)
    pan[:, :5], qmap[:, :5] = 0, 25           # stuff A by learnable 25
    qmap[:3, :5] = 24                         # ... merged with learnable 24
    pan[:5, 5:], qmap[:5, 5:] = 1001, 3       # thing B by conditional 3
    pan[5:, 5:7], qmap[5:, 5:7] = 2001, 26    # C: IoU 10/15 by learnable 26
    pan[5:, 8:], qmap[5:, 8:] = 3, 7          # stuff D by conditional 7
    recs = attribute_segments(gt, [False, True, True, False], pan, qmap,
                              num_conditional=20)
    assert [(r['query_index'], r['query_type']) for r in recs] == [
        (25, 'learnable'), (3, 'conditional'), (26, 'learnable'),
        (7, 'conditional')]
    assert abs(recs[2]['iou'] - 10 / 15) < 1e-6
    # a segment covered below the IoU threshold is not found
    recs_strict = attribute_segments(gt, [False, True, True, False], pan,
                                     qmap, num_conditional=20, iou_thr=0.7)
    assert recs_strict[2]['query_type'] is None
    table = summarize(recs)
    assert table['thing'] == dict(segments=2, found=2, conditional=50.0,
                                  learnable=50.0)
    assert table['stuff'] == dict(segments=2, found=2, conditional=50.0,
                                  learnable=50.0)
    table = summarize(recs_strict)
    assert table['thing'] == dict(segments=2, found=1, conditional=100.0,
                                  learnable=0.0)


def test_void_never_makes_a_segment():
    from mqformer.evaluation import attribute_segments
    gt = np.ones((1, 4, 4), bool)
    pan = np.full((4, 4), 5)  # all void
    rec = attribute_segments(gt, [True], pan, np.full((4, 4), -1), 10)[0]
    assert rec['query_type'] is None and rec['query_index'] is None


def test_misses_are_explained_from_the_raw_outputs():
    """Five missed segments, one per reason, on a constructed case."""
    from mqformer.evaluation import (attribute_segments, explain_misses,
                                     summarize_misses)
    H, W = 10, 10
    gt = np.zeros((5, H, W), bool)
    gt[0, :5, :5] = True    # text 0: learnable 3 has its mask, scores 0.2
    gt[1, :5, 5:] = True    # text 1: query 0's mask, best text 2 (0.9 > 0.6)
    gt[2, 5:, :5] = True    # text 2: query 1's mask and text, yet not output
    gt[3, 5:, 5:8] = True   # text 3: nobody's mask
    gt[4, 5:, 8:] = True    # text 0 again: made (found), never explained
    pan = np.full((H, W), 99)
    qmap = np.full((H, W), -1)
    pan[gt[4]], qmap[gt[4]] = 0, 2
    recs = attribute_segments(gt, [False, True, True, True, False], pan,
                              qmap, num_conditional=3)
    assert [r['query_type'] for r in recs] == [None] * 4 + ['conditional']
    probs = np.full((4, 4), 0.05)
    probs[3, 0] = 0.2            # under the 0.25 threshold
    probs[0, 1], probs[0, 2] = 0.6, 0.9
    probs[1, 2] = 0.7
    masks = np.zeros((4, H, W))
    masks[3][gt[0]] = 0.9
    masks[2][gt[0]] = 0.9        # also covers it, scores text 0 lower
    masks[2, 0, 0] = 0.0
    masks[0][gt[1]] = 0.8
    masks[1][gt[2]] = 0.7
    masks[1, 5:, 5] = 0.7        # IoU 25/30: still covers
    masks[0][gt[3]] = 0.4        # under mask_thr: no mask
    explain_misses(recs, gt, [0, 1, 2, 3, 0], probs, masks,
                   num_conditional=3)
    assert [r.get('miss') for r in recs] == [
        'low score', 'wrong text', 'lost in merge', 'no mask', None]
    assert [r.get('miss_query') for r in recs[:4]] == [3, 0, 1, None]
    assert recs[0]['miss_query_type'] == 'learnable'
    assert abs(recs[0]['miss_score'] - 0.2) < 1e-9
    # a stricter IoU leaves query 1's mask (IoU 25/30) short of text 2
    strict = attribute_segments(gt, [False, True, True, True, False], pan,
                                qmap, num_conditional=3, iou_thr=0.9)
    explain_misses(strict, gt, [0, 1, 2, 3, 0], probs, masks, 3, iou_thr=0.9)
    assert strict[2]['miss'] == 'no mask'
    # binary masks (what the tool keeps) explain the same
    again = attribute_segments(gt, [False, True, True, True, False], pan,
                               qmap, num_conditional=3)
    explain_misses(again, gt, [0, 1, 2, 3, 0], probs, masks >= 0.5, 3)
    assert again == recs
    table = summarize_misses(recs)
    assert table['thing'] == {'lost in merge': 1, 'wrong text': 1,
                              'low score': 0, 'no mask': 1,
                              'by learnable': 0}
    assert table['stuff'] == {'lost in merge': 0, 'wrong text': 0,
                              'low score': 1, 'no mask': 0,
                              'by learnable': 1}

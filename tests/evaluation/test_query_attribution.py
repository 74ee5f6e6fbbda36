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

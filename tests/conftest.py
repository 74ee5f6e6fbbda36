import os
import os.path as osp

import pytest

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CFG = osp.join(REPO, 'configs', 'mqformer',
                    'mqformer_tiny_shapes-instance.py')


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory):
    """A small shapes world in COCO instance and panoptic formats."""
    from mqformer.testing import (ShapesWorld, write_coco_instances,
                                  write_coco_panoptic)
    root = str(tmp_path_factory.mktemp('shapes_world'))
    for split, n, seed in (('train', 8, 0), ('val', 4, 1)):
        write_coco_instances(root, ShapesWorld(seed=seed, gray_prob=0.25), n,
                             split)
        write_coco_panoptic(root, ShapesWorld(seed=seed, gray_prob=0.25), n,
                            split)
    return root


def generate_world(root, train: int, val: int) -> str:
    """The whole shapes world (every task's format) through the converter
    tool users run; returns ``root``."""
    import subprocess
    import sys
    subprocess.run([sys.executable, osp.join(
        REPO, 'tools/dataset_converters/make_shapes_world.py'), str(root),
        '--train', str(train), '--val', str(val)], check=True,
        capture_output=True)
    return str(root)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint of the tiny config (random weights; shapes are what
    count)."""
    import torch

    import mqformer  # noqa: F401
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY_CFG).model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def tiny_cfg(shapes_root=None, work_dir=None, text_encoder='tiny'):
    """The tiny config, pointed at a generated shapes world."""
    import mqformer  # noqa: F401
    from mmengine.config import Config
    cfg = Config.fromfile(TINY_CFG)
    if text_encoder == 'tiny':
        cfg.model.text_encoder = cfg.tiny_text_encoder
    if shapes_root is not None:
        root = shapes_root.rstrip('/') + '/'
        for dl in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[dl].dataset.data_root = root
        cfg.val_evaluator.ann_file = root + 'annotations/instances_val.json'
        cfg.test_evaluator = cfg.val_evaluator
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    return cfg

"""Checkpoints keep loading when the code is reorganised: the state-dict
keys and shapes of the tiny (the demo's) and the R50 MQ-Former are the ones
recorded in tests/models/recorded/ before the model and head were split into one
module per concept (the text model's own weights are Hugging Face's and are
left out)."""
import os.path as osp

import pytest

from conftest import REPO, tiny_cfg
from .test_mqformer import build_model

DATA = osp.join(osp.dirname(__file__), 'recorded')


def keys(model):
    return [f'{k} {tuple(v.shape)}'
            for k, v in sorted(model.state_dict().items())
            if not k.startswith('text_encoder.model.')]


def recorded(name):
    with open(osp.join(DATA, f'state_dict_{name}.txt')) as f:
        return f.read().split('\n')[:-1]


def test_tiny_model_keys_are_the_recorded_ones():
    assert keys(build_model('mixed')) == recorded('mqformer_tiny')


@pytest.mark.parametrize('name', ['mqformer_tiny', 'mqformer_r50'])
def test_recorded_keys_cover_every_part(name):
    """The records hold every part of the model (so the comparison above and
    below would notice a part that moved)."""
    names = {line.split('.')[0] for line in recorded(name)}
    assert {'backbone', 'encoder', 'decoder', 'bbox_head', 'text_proj',
            'learnable_query', 'memory_trans_fc'} <= names


def test_r50_model_keys_are_the_recorded_ones():
    import mqformer  # noqa: F401
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'mqformer',
        'mqformer_r50_8xb2-50e_coco-instance.py'))
    cfg.model.text_encoder = tiny_cfg().tiny_text_encoder
    cfg.model.backbone.init_cfg = None
    assert keys(MODELS.build(cfg.model)) == recorded('mqformer_r50')

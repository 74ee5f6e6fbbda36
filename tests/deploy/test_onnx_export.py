"""ONNX export with the vocabulary as an input: the graph matches PyTorch for
two vocabularies (3 and 1,200 texts) on a padded input, the runner matches
MQFormer.predict for every task, bad inputs are refused clearly."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO, TINY_CFG
from models.test_mqformer import build_model

pytest.importorskip('onnxruntime', reason='requirements/deploy.txt')

SHAPE = (128, 160)  # (H, W): non-square, multiples of 32
# max |onnxruntime - PyTorch| allowed (float32; measured ~3e-6 / 3e-7 / 3e-5)
TOL = dict(cls_scores=1e-4, boxes=1e-5, masks=5e-4)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    from mqformer.deploy import export_onnx
    model = build_model('mixed').eval()
    path = str(tmp_path_factory.mktemp('onnx') / 'tiny.onnx')
    meta = export_onnx(model, path, SHAPE)
    return model, path, meta


def image(seed=0, size=(150, 200)):
    """A generated BGR image (h, w) that letterboxes into SHAPE."""
    from mqformer.testing import ShapesWorld
    img = ShapesWorld(seed=seed).sample()[0]
    return np.ascontiguousarray(cv2.resize(img, size[::-1]))


@pytest.mark.parametrize('num_texts', [3, 1200])
def test_graph_matches_pytorch_for_two_vocabularies(exported, num_texts):
    """Same padded input (valid 96 x 160 of 128 x 160), two vocabulary
    sizes through one file."""
    from mqformer.deploy import MQFormerExportModel, ONNXRunner
    model, path, _ = exported
    g = torch.Generator().manual_seed(num_texts)
    x = torch.randn(1, 3, *SHAPE, generator=g)
    x[:, :, 96:] = 0
    t = torch.randn(1, num_texts, model.embed_dims, generator=g)
    s = torch.tensor([96, 160])
    with torch.no_grad():
        ref = MQFormerExportModel(model, SHAPE).eval()(x, t, s)
    out = ONNXRunner(path).session.run(None, dict(
        inputs=x.numpy(), text_embeds=t.numpy(), img_shape=s.numpy()))
    assert out[0].shape == (1, 30, num_texts)
    for (name, tol), o, r in zip(TOL.items(), out, ref):
        assert np.abs(o - r.numpy()).max() < tol, name


@pytest.mark.parametrize('dqs', ['nms', 'mask_nms'])
def test_distinct_query_selection_exports(tmp_path, dqs):
    """With ``dqs_cfg`` the NMS before the top-k is in the graph (not a
    traced constant): two inputs, one with a near-zero image whose
    proposals mostly collapse onto each other, match PyTorch."""
    from mqformer.deploy import MQFormerExportModel, ONNXRunner, export_onnx
    model = build_model('mixed', dqs_cfg=dict(type=dqs, iou_threshold=0.8))
    model = model.eval()
    path = str(tmp_path / 'dqs.onnx')
    export_onnx(model, path, SHAPE)
    runner = ONNXRunner(path)
    g = torch.Generator().manual_seed(1)
    for x in (torch.randn(1, 3, *SHAPE, generator=g),
              torch.zeros(1, 3, *SHAPE)):
        t = torch.randn(1, 5, model.embed_dims, generator=g)
        s = torch.tensor(SHAPE)
        with torch.no_grad():
            ref = MQFormerExportModel(model, SHAPE).eval()(x, t, s)
        out = runner.session.run(None, dict(
            inputs=x.numpy(), text_embeds=t.numpy(), img_shape=s.numpy()))
        for (name, tol), o, r in zip(TOL.items(), out, ref):
            assert np.abs(o - r.numpy()).max() < tol, name


def test_export_model_is_the_models_forward(exported):
    """The export wrapper (tensor inputs) gives what MQFormer's own
    forward gives for a padded sample with the vocabulary's texts."""
    from mmdet.structures import DetDataSample
    from mqformer.deploy import MQFormerExportModel, encode_vocabulary
    model, _, _ = exported
    vocab = encode_vocabulary(model, ['red circle', 'sky', 'blue square'])
    x = torch.randn(1, 3, *SHAPE)
    sample = DetDataSample(metainfo=dict(
        img_shape=(96, 128), batch_input_shape=SHAPE, texts=vocab.texts,
        text_type='class'))
    with torch.no_grad():
        head_in = model.forward_transformer(model.extract_feat(x), [sample])
        ref = model.bbox_head.predict(**head_in)
        out = MQFormerExportModel(model, SHAPE).eval()(
            x, torch.from_numpy(vocab.embeds)[None], torch.tensor([96, 128]))
    for o, r in zip(out, ref):
        assert torch.allclose(o, r, atol=1e-5)


def test_runner_preprocessing_is_mmdets(exported):
    """Letterbox + bgr_to_rgb + normalisation + zero padding equal mmdet's
    Resize(keep_ratio) and the model's data preprocessor."""
    import mmcv
    from mmdet.structures import DetDataSample
    from mqformer.deploy import ONNXRunner
    model, path, _ = exported
    img = image()
    inputs, meta = ONNXRunner(path).preprocess(img)
    assert meta['img_shape'] == (120, 160)   # 150 x 200 fit into 128 x 160
    assert meta['batch_input_shape'] == SHAPE
    resized = mmcv.imrescale(img, 0.8)
    ref = model.data_preprocessor(dict(
        inputs=[torch.from_numpy(resized).permute(2, 0, 1).contiguous()],
        data_samples=[DetDataSample()]), False)['inputs'][0]
    assert np.allclose(inputs[0, :, :120, :160], ref[:, :120, :160].numpy(),
                       atol=1e-5)
    assert not inputs[0, :, 120:].any()


def predict_for(model, inputs, sample, task):
    """MQFormer.predict on a preprocessed input with only ``task`` on."""
    head = model.fusion_head
    saved = dict(head.test_cfg)
    head.test_cfg.update({f'{t}_on': t == task for t in
                          ('instance', 'panoptic', 'semantic')})
    try:
        with torch.no_grad():
            return model.predict(torch.from_numpy(inputs), [sample])[0]
    finally:
        head.test_cfg.clear()
        head.test_cfg.update(saved)


@pytest.mark.parametrize('task', ['instance', 'panoptic', 'semantic'])
def test_runner_matches_mqformer_predict(exported, task):
    """onnxruntime + the runner's post-processing = MQFormer.predict on the
    same letterboxed input, for every output kind."""
    from mmdet.structures import DetDataSample
    from mqformer.deploy import ONNXRunner, encode_vocabulary
    model, path, _ = exported
    texts = ['red circle', 'blue square', 'green triangle', 'sky', 'grass']
    vocab = encode_vocabulary(model, texts)
    runner = ONNXRunner(path)
    img = image(seed=3)
    got = runner.predict(img, vocab, task, stuff_texts=['sky', 'grass'])

    inputs, meta = runner.preprocess(img)
    sample = DetDataSample(metainfo=dict(
        meta, texts=texts, text_type='class', task=task,
        text_is_thing=[t not in ('sky', 'grass') for t in texts]))
    ref = predict_for(model, inputs, sample, task)
    if task == 'instance':
        a, b = got.pred_instances, ref.pred_instances
        assert len(a) == len(b) > 0
        assert torch.allclose(a.scores, b.scores, atol=1e-4)
        assert a.masks.shape[-2:] == img.shape[:2]
        same = (a.labels == b.labels) & (a.query_index == b.query_index)
        assert same.float().mean() >= 0.9  # ties may swap places
        assert torch.allclose(a.bboxes[same], b.bboxes[same], atol=1e-2)
        assert (a.query_learnable == (a.query_index >= 20)).all()
    else:
        key = 'pred_panoptic_seg' if task == 'panoptic' else 'pred_sem_seg'
        a, b = got.get(key).sem_seg, ref.get(key).sem_seg
        assert a.shape == b.shape and a.shape[-2:] == img.shape[:2]
        assert (a == b).float().mean() >= 0.99


def test_vocabulary_file_and_bad_inputs(exported, tmp_path):
    from mqformer.deploy import ONNXRunner, Vocabulary, encode_vocabulary
    model, path, meta = exported
    vocab = encode_vocabulary(model, ['a red circle', 'sky'], 'phrase')
    f = str(tmp_path / 'v.npz')
    vocab.save(f)
    back = Vocabulary.load(f)
    assert back.texts == vocab.texts and back.text_type == 'phrase'
    assert np.array_equal(back.embeds, vocab.embeds)
    with torch.no_grad():  # the model's own text path
        e, _ = model.text_encoder([vocab.texts], ['phrase'])
        assert np.allclose(model.text_proj(e)[0].numpy(), vocab.embeds,
                           atol=1e-6)
    # metadata: preprocessing and query layout travel with the file
    assert meta['input_shape'] == list(SHAPE)
    assert meta['num_conditional_queries'] == 20 and meta['embed_dims'] == 64
    with pytest.raises(FileNotFoundError, match='encode_vocabulary'):
        Vocabulary.load(str(tmp_path / 'missing.npz'))
    np.savez(tmp_path / 'other.npz', x=np.zeros(3))
    with pytest.raises(ValueError, match='other.npz: not a vocabulary'):
        Vocabulary.load(str(tmp_path / 'other.npz'))
    with pytest.raises(ValueError, match='32-d but the model takes 64-d'):
        ONNXRunner(path).forward(np.zeros((1, 3, *SHAPE), np.float32),
                                 Vocabulary(['x'], np.zeros((1, 32),
                                                            np.float32)),
                                 SHAPE)
    import onnx  # a graph exported without our metadata
    proto = onnx.load(path)
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / 'bare.onnx'))
    with pytest.raises(ValueError, match='bare.onnx: no "mqformer" metadata'):
        ONNXRunner(str(tmp_path / 'bare.onnx'))


# three sizes and aspect ratios through one dynamic file (H, W)
DYNAMIC_SIZES = ((128, 160), (96, 224), (224, 96))


@pytest.fixture(scope='module')
def exported_dynamic(exported, tmp_path_factory):
    from mqformer.deploy import export_onnx
    model = exported[0]
    path = str(tmp_path_factory.mktemp('onnx') / 'tiny_dynamic.onnx')
    meta = export_onnx(model, path, SHAPE, dynamic=True, test_scale=(160, 128))
    return model, path, meta


@pytest.mark.parametrize('size', DYNAMIC_SIZES)
def test_dynamic_graph_matches_pytorch_at_any_size(exported_dynamic, size):
    """One file, three image sizes and aspect ratios (each padded at the
    bottom), the same bounds as the fixed-size graph."""
    from mqformer.deploy import MQFormerExportModel, ONNXRunner
    model, path, meta = exported_dynamic
    assert meta['dynamic'] and meta['input_shape'] is None
    H, W = size
    g = torch.Generator().manual_seed(H + W)
    x = torch.randn(1, 3, H, W, generator=g)
    x[:, :, H - 32:] = 0
    t = torch.randn(1, 6, model.embed_dims, generator=g)
    s = torch.tensor([H - 32, W])
    with torch.no_grad():
        ref = MQFormerExportModel(model).eval()(x, t, s)
        fixed = MQFormerExportModel(model, size).eval()(x, t, s)
    out = ONNXRunner(path).session.run(None, dict(
        inputs=x.numpy(), text_embeds=t.numpy(), img_shape=s.numpy()))
    assert out[2].shape == (1, 30, H // 4, W // 4)
    for (name, tol), o, r, f in zip(TOL.items(), out, ref, fixed):
        assert torch.equal(r, f), name  # the symbolic path is the same math
        assert np.abs(o - r.numpy()).max() < tol, name


def test_dynamic_runner_resizes_as_the_test_pipeline(exported_dynamic):
    """A dynamic file's runner resizes as the test pipeline's Resize and
    pads to 32 only: its panoptic map equals MQFormerInferencer-style
    preprocessing + MQFormer.predict."""
    import mmcv
    from mmdet.structures import DetDataSample
    from mqformer.deploy import ONNXRunner, encode_vocabulary
    model, path, _ = exported_dynamic
    runner = ONNXRunner(path)
    img = image(seed=2, size=(90, 200))
    inputs, meta = runner.preprocess(img)
    resized = mmcv.imrescale(img, (160, 128))  # the test scale (w, h)
    assert meta['img_shape'] == resized.shape[:2] == (72, 160)
    assert inputs.shape == (1, 3, 96, 160)
    texts = ['red circle', 'blue square', 'sky', 'grass']
    vocab = encode_vocabulary(model, texts)
    got = runner.predict(img, vocab, 'panoptic', stuff_texts=['sky', 'grass'])
    sample = DetDataSample(metainfo=dict(
        meta, texts=texts, text_type='class', task='panoptic',
        text_is_thing=[t not in ('sky', 'grass') for t in texts]))
    ref = predict_for(model, inputs, sample, 'panoptic')
    a, b = got.pred_panoptic_seg.sem_seg, ref.pred_panoptic_seg.sem_seg
    assert a.shape == b.shape and a.shape[-2:] == img.shape[:2]
    assert (a == b).float().mean() >= 0.99


def ONNXRunner_of(path):
    from mqformer.deploy import ONNXRunner
    return ONNXRunner(path)


def test_quantized_copies_run_with_the_runner(exported, tmp_path):
    """int8 (dynamic), int8-static (calibrated on a folder of images) and
    fp16 copies keep the metadata, run through the runner and stay close to
    float32; bad requests are refused clearly."""
    from mqformer.deploy import (calibration_images, encode_vocabulary,
                                 quantize_onnx)
    model, path, _ = exported
    calib = tmp_path / 'calib'
    calib.mkdir()
    for i in range(3):
        cv2.imwrite(str(calib / f'{i}.jpg'), image(seed=10 + i))
    (calib / 'notes.txt').write_text('not an image')
    images = calibration_images(str(calib))
    assert len(images) == 3
    vocab = encode_vocabulary(model, ['red circle', 'sky', 'blue square'])
    img = image(seed=3)
    ref_runner = ONNXRunner_of(path)
    inputs, meta = ref_runner.preprocess(img)
    ref = ref_runner.forward(inputs, vocab, meta['img_shape'])
    for mode in ('int8', 'int8-static', 'fp16'):
        small = str(tmp_path / f'm_{mode}.onnx')
        assert quantize_onnx(path, small, mode, images,
                             vocab)['quantization'] == mode
        runner = ONNXRunner_of(small)
        assert runner.meta['quantization'] == mode
        out = runner.forward(inputs, vocab, meta['img_shape'])
        for o, r in zip(out, ref):
            assert o.shape == r.shape and o.dtype == np.float32
        # the outputs follow float32's (random weights: a little noise
        # changes which proposals are selected, so whole rows differ;
        # measured correlations cls / boxes / masks 0.78-0.90 / 0.999 /
        # 0.79-0.94; the accuracy of a trained model is
        # benchmarks/onnx_quantized.py's)
        for o, r, bound in zip(out, ref, (0.7, 0.99, 0.7)):
            corr = np.corrcoef(o.ravel(), r.ravel())[0, 1]
            assert corr > bound, (mode, corr)
    with pytest.raises(ValueError, match='int8-static needs calibration'):
        quantize_onnx(path, str(tmp_path / 'x.onnx'), 'int8-static')
    with pytest.raises(ValueError, match='must be one of'):
        quantize_onnx(path, str(tmp_path / 'x.onnx'), 'int4')
    with pytest.raises(ValueError, match='no images'):
        calibration_images(str(tmp_path / 'calib' / '..' / 'calib' / '..'))


def run_tool(*args):
    return subprocess.run([sys.executable, *args], cwd=REPO,
                          capture_output=True, text=True)


def test_export_and_onnx_infer_tools(tiny_checkpoint, tmp_path):
    """The README commands: export (+ vocabulary, --verify), a second
    vocabulary without re-exporting, onnx_infer to JSON; a
    bad --shape are refused with the reason; --dynamic exports and
    verifies at two sizes."""
    out = str(tmp_path / 'm.onnx')
    tool = osp.join(REPO, 'tools/deployment')
    r = run_tool(f'{tool}/export_onnx.py', TINY_CFG, tiny_checkpoint, '--out',
                 out, '--texts', 'red circle', 'sky', '--verify')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'input (1, 3, 160, 160)' in r.stdout
    errs = [float(line.rsplit('=', 1)[1]) for line in r.stdout.splitlines()
            if line.startswith('[verify]')]
    assert len(errs) == 3 and max(errs) < 5e-4
    assert osp.isfile(str(tmp_path / 'm_vocab.npz'))
    vocab = str(tmp_path / 'v2.npz')
    names = tmp_path / 'names.txt'
    names.write_text('blue square\ngreen triangle\n\ngrass\n')
    r = run_tool(f'{tool}/encode_vocabulary.py', TINY_CFG, tiny_checkpoint,
                 '--texts-file', str(names), '--out', vocab)
    assert r.returncode == 0 and '3 texts' in r.stdout, r.stderr[-2000:]
    img = str(tmp_path / 'img.jpg')
    cv2.imwrite(img, image(seed=5))
    r = run_tool(f'{tool}/onnx_infer.py', out, img, str(tmp_path / 'no.jpg'),
                 '--vocab', vocab, '--task', 'panoptic', '--stuff', 'grass',
                 '--out-dir', str(tmp_path / 'res'))
    assert r.returncode == 1 and 'no.jpg' in r.stderr  # reported, not fatal
    res = json.load(open(tmp_path / 'res' / 'img.json'))
    assert res['texts'] == ['blue square', 'green triangle', 'grass']
    assert 'panoptic' in res and res['height'] == 150
    dyn = str(tmp_path / 'dyn.onnx')
    r = run_tool(f'{tool}/export_onnx.py', TINY_CFG, 'none', '--dynamic',
                 '--out', dyn, '--verify', '--quantize', 'int8')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'H, W dynamic' in r.stdout and 'dyn_int8.onnx: int8' in r.stdout
    assert ONNXRunner_of(str(tmp_path / 'dyn_int8.onnx')).meta['dynamic']
    errs = [float(line.rsplit('=', 1)[1]) for line in r.stdout.splitlines()
            if line.startswith('[verify]')]
    assert len(errs) == 6 and max(errs) < 5e-4  # two sizes
    from mqformer.deploy import export_onnx
    with pytest.raises(ValueError, match='multiples of 32'):
        export_onnx(build_model('mixed'), out, (100, 160))

"""Quantized ONNX files against float32: accuracy on a world's test images,
file size and latency (onnxruntime float32 and PyTorch measured in the same
run, interleaved).

    python benchmarks/onnx_quantized.py [--world shapes] [--seed 0]
        [--modes int8 int8-static fp16] [--runs 9] [--threads 2]
        [--json benchmarks/results/onnx_quantized.json]

(from the repository root).

The checkpoint is the fair comparison's MQ-Former of that world and seed
(tools/analysis_tools/fair_comparison.py trains it), with the panoptic
thresholds it chose on the calibration images. Every runtime is scored by
the same mmdet metrics through ``Runner.test`` (mask AP on the instance
task, PQ on the panoptic one); int8-static calibrates on the world's
calibration images, never the test images.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from common import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))


class ONNXTestModel(torch.nn.Module):
    """A stand-in for the model in ``Runner.test``: every sample's original
    image runs through :class:`ONNXRunner` with the sample's own texts."""

    def __init__(self, runner, model, task, test_cfg):
        super().__init__()
        self.runner, self.model, self.task = runner, model, task
        self.test_cfg = dict(test_cfg)  # the task config's post-processing
        self.vocabs = {}

    def vocab(self, texts, text_type):
        from mqformer.deploy import encode_vocabulary
        key = (tuple(texts), text_type)
        if key not in self.vocabs:
            self.vocabs[key] = encode_vocabulary(self.model, list(texts),
                                                 text_type)
        return self.vocabs[key]

    def test_step(self, data):
        head = self.runner.fusion_head
        saved = dict(head.test_cfg)
        head.test_cfg.update(self.test_cfg)
        try:
            return self.predict(data['data_samples'])
        finally:
            head.test_cfg.clear()
            head.test_cfg.update(saved)

    def predict(self, samples):
        out = []
        for sample in samples:
            texts = list(sample.texts)
            stuff = [t for t, thing in zip(texts, sample.text_is_thing)
                     if not thing]
            pred = self.runner.predict(sample.img_path, self.vocab(
                texts, sample.get('text_type', 'class')), self.task, stuff)
            for key in ('pred_instances', 'pred_panoptic_seg'):
                if key in pred:
                    setattr(sample, key, getattr(pred, key))
            out.append(sample)
        return out


def score(cfgs, ckpt, runner=None, model=None):
    """mask AP (instance) and PQ (panoptic) of ``ckpt`` in PyTorch, or of an
    ONNX ``runner``."""
    from demo import score_checkpoint
    from mmengine.runner import Runner

    from mqformer.compat import checkpoint_io
    out = {}
    for task, cfg in cfgs.items():
        cfg = copy.deepcopy(cfg)
        cfg.work_dir = tempfile.mkdtemp()
        if runner is None:
            metrics = score_checkpoint(cfg, ckpt)
        else:
            cfg.load_from = None
            with checkpoint_io():
                r = Runner.from_cfg(cfg)
                r.model = ONNXTestModel(runner, model, task,
                                        cfg.model.test_cfg)
                metrics = r.test()
        out.update({k: float(v) for k, v in metrics.items()
                    if k in ('coco/segm_mAP', 'coco_panoptic/PQ')})
    return dict(mask_ap=round(out['coco/segm_mAP'] * 100, 2),
                pq=round(out['coco_panoptic/PQ'], 2))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--world', default='shapes')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--modes', nargs='+', default=['int8', 'int8-static',
                                                  'fp16'])
    p.add_argument('--runs', type=int, default=9)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--calib-num', type=int, default=32)
    p.add_argument('--json', default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import demo
    import fair_comparison as fc

    from common import timeit_interleaved
    from mqformer.apis import init_model
    from mqformer.deploy import (MQFormerExportModel, ONNXRunner,
                                 calibration_images, encode_vocabulary,
                                 export_onnx, quantize_onnx)
    key = f'{args.world}/mqformer/seed{args.seed}'
    row = json.load(open(osp.join(REPO, 'benchmarks', 'results',
                                  'fair_comparison.json')))[key]
    wd = osp.join(REPO, 'work_dirs', 'fair_comparison', key)
    ckpt = osp.join(wd, 'final.pth')
    train_cfg = fc.model_config('mqformer', args.world)
    cfgs = {}
    for task in ('instance', 'panoptic'):
        cfg = fc.retarget(demo.eval_config(task, train_cfg.model), args.world)
        cfg = demo.text_encoder(cfg, 'minilm', training=False)
        if task == 'panoptic':
            cfg.model.test_cfg.update(row['thresholds'])
        cfg.pop('randomness', None)
        cfgs[task] = cfg
    model = init_model(cfgs['panoptic'], ckpt)
    from mqformer.apis.inferencer import test_scale_of
    shape = tuple(-(-x // 32) * 32
                  for x in test_scale_of(cfgs['panoptic'])[::-1])
    tmp = tempfile.mkdtemp()
    files = {'float32': osp.join(tmp, 'model.onnx')}
    export_onnx(model, files['float32'], shape)
    world_root = osp.join(REPO, fc.WORLDS[args.world])
    calib = calibration_images(osp.join(world_root, 'calib'), args.calib_num)
    texts = fc.world_classes(world_root)
    vocab = encode_vocabulary(model, texts[0] + texts[1])
    for mode in args.modes:
        files[mode] = osp.join(tmp, f'model_{mode}.onnx')
        t0 = time.time()
        quantize_onnx(files['float32'], files[mode], mode, calib, vocab)
        print(f'[quantize] {mode}: {time.time() - t0:.0f} s')
    rows = {'pytorch': dict(score(cfgs, ckpt), size_mb=None)}
    runners = {}
    for name, path in files.items():
        runners[name] = ONNXRunner(path, num_threads=args.threads)
        rows[name] = dict(score(cfgs, ckpt, runners[name], model),
                          size_mb=round(os.path.getsize(path) / 2**20, 2))
        print(f'[score] {name}: {rows[name]}')
    # latency of the graph alone, one letterboxed test image, the world's
    # vocabulary; PyTorch runs the same exported wrapper
    img = calib[0]
    from mqformer.apis.inferencer import read_image
    inputs, meta = runners['float32'].preprocess(read_image(img))
    wrapper = MQFormerExportModel(model, shape).eval()
    x = torch.from_numpy(inputs)
    t = torch.from_numpy(vocab.embeds[None].astype(np.float32))
    s = torch.tensor(meta['img_shape'])

    def torch_fn():
        with torch.no_grad():
            wrapper(x, t, s)

    fns = {'pytorch': torch_fn}
    for name, r in runners.items():
        fns[name] = (lambda r=r: r.forward(inputs, vocab, meta['img_shape']))
    raw = {}
    timeit_interleaved(fns, runs=args.runs, warmup=2, raw=raw)
    base = raw['float32']
    for name, times in raw.items():
        ratios = sorted(a / b for a, b in zip(times, base))
        rows[name].update(
            ms=[round(1000 * v, 1) for v in (min(times),
                                             statistics.median(times),
                                             max(times))],
            vs_float32_onnx=[round(v, 2) for v in (
                ratios[0], statistics.median(ratios), ratios[-1])])
    print(f'\n{key}, input {shape}, {len(vocab.texts)} texts, '
          f'{args.threads} threads, {args.runs} interleaved runs')
    print('| runtime | mask AP | PQ | file MB | latency ms min/median/max '
          '| x float32 onnxruntime (per run, min/median/max) |')
    print('|---|---|---|---|---|---|')
    for name, r in rows.items():
        print(f'| {name} | {r["mask_ap"]:.1f} | {r["pq"]:.1f} | '
              f'{r["size_mb"] if r["size_mb"] is not None else "-"} | '
              f'{"/".join(str(v) for v in r["ms"])} | '
              f'{"/".join(str(v) for v in r["vs_float32_onnx"])} |')
    if args.json:
        import subprocess
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                                cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        with open(args.json, 'w') as f:
            json.dump(dict(checkpoint=key, input_shape=shape,
                           texts=len(vocab.texts), threads=args.threads,
                           runs=args.runs, commit=commit,
                           date=time.strftime('%Y-%m-%d'), rows=rows), f,
                      indent=1)


if __name__ == '__main__':
    main()

"""onnxruntime vs PyTorch latency on the CPU for the exported network
(backbone, encoder, mixed-query decoder, head; the text embeddings are an
input in both), same inputs, calls interleaved round-robin, threads pinned.

    python benchmarks/onnx_latency.py [--size 512] [--runs 7] [--threads 2]
        [--texts 80] [--models r50 tiny] [--quantize int8 int8-static fp16]
        [--dynamic]

Prints min/median/max per runtime and the ratio range onnxruntime/PyTorch;
with --quantize (and --dynamic: the file for every image size, run at the
same input) also each copy's time against the fixed-size float32 file
(int8-static calibrates on 8 generated shapes-world images: latency only;
accuracy is benchmarks/onnx_quantized.py's).
"""
import argparse
import os
import tempfile

import numpy as np
import torch

from common import MINILM, REPO, build, timeit_interleaved

CONFIGS = dict(
    r50=f'{REPO}/configs/mqformer/mqformer_r50_8xb2-50e_coco-instance.py',
    tiny=f'{REPO}/configs/mqformer/mqformer_tiny_shapes-instance.py')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--runs', type=int, default=7)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--texts', type=int, default=80)
    p.add_argument('--models', nargs='+', default=['r50', 'tiny'],
                   choices=sorted(CONFIGS))
    p.add_argument('--quantize', nargs='*', default=[],
                   choices=['int8', 'int8-static', 'fp16'])
    p.add_argument('--dynamic', action='store_true')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from mqformer.deploy import MQFormerExportModel, ONNXRunner, export_onnx
    shape = (args.size, args.size)
    rows, qrows, sizes = [], [], {}
    for name in args.models:
        model = build(CONFIGS[name], text_encoder=MINILM)
        wrapper = MQFormerExportModel(model, shape).eval()
        path = os.path.join(tempfile.mkdtemp(), f'{name}.onnx')
        export_onnx(model, path, shape)
        runner = ONNXRunner(path, num_threads=args.threads)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, *shape, generator=g)
        t = torch.randn(1, args.texts, model.embed_dims, generator=g)
        s = torch.tensor(shape)
        feed = dict(inputs=x.numpy(), text_embeds=t.numpy(),
                    img_shape=s.numpy())

        def pytorch():
            with torch.no_grad():
                return wrapper(x, t, s)

        def onnxruntime():
            return runner.session.run(None, feed)

        # max |difference| per output, relative to the output's largest value
        err = ' / '.join(
            f'{np.abs(o - r.numpy()).max() / np.abs(r.numpy()).max():.0e}'
            for o, r in zip(onnxruntime(), pytorch()))
        fns = dict(pytorch=pytorch, onnxruntime=onnxruntime)
        copies = quantized(model, path, args.quantize)
        if args.dynamic:
            copies['dynamic'] = path.replace('.onnx', '_dynamic.onnx')
            export_onnx(model, copies['dynamic'], shape, dynamic=True,
                        test_scale=shape[::-1])
        for mode, small in copies.items():
            r = ONNXRunner(small, num_threads=args.threads)
            fns[mode] = (lambda r=r: r.session.run(None, feed))
            sizes[(name, mode)] = os.path.getsize(small) / 2**20
        raw = {}
        timeit_interleaved(fns, runs=args.runs, warmup=2, raw=raw)
        pt, ort = np.array(raw['pytorch']), np.array(raw['onnxruntime'])
        ratios = ort / pt
        rows.append((name, pt, ort, ratios, err,
                     os.path.getsize(path) / 2**20))
        for mode in copies:
            q = np.array(raw[mode])
            qrows.append((name, mode, q, q / ort, sizes[(name, mode)]))
    print(f'\n{args.size}x{args.size}, {args.texts} texts, {args.threads} '
          f'threads, {args.runs} interleaved runs (seconds min/median/max)')
    print('| model | PyTorch | onnxruntime | ratio ort/PyTorch (median, '
          'range) | max diff / max value (cls / box / mask) | file MB |')
    print('|---|---|---|---|---|---|')
    for name, pt, ort, ratios, err, mb in rows:
        def mmm(a):
            return f'{a.min():.3f} / {np.median(a):.3f} / {a.max():.3f}'
        print(f'| {name} | {mmm(pt)} | {mmm(ort)} | '
              f'{np.median(ort) / np.median(pt):.2f}x '
              f'({ratios.min():.2f}-{ratios.max():.2f}x) | {err} | '
              f'{mb:.1f} |')

    if qrows:
        print('\n| model | copy | onnxruntime s (min / median / max) | x '
              'float32 onnxruntime (median, range) | file MB |')
        print('|---|---|---|---|---|')
    for name, mode, q, r, mb in qrows:
        print(f'| {name} | {mode} | {q.min():.3f} / {np.median(q):.3f} / '
              f'{q.max():.3f} | {np.median(r):.2f}x ({r.min():.2f}-'
              f'{r.max():.2f}x) | {mb:.1f} |')


def quantized(model, path, modes):
    """{mode: file} of quantized copies of ``path``."""
    if not modes:
        return {}
    import cv2

    from mqformer.deploy import encode_vocabulary, quantize_onnx
    from mqformer.testing import ShapesWorld
    calib = tempfile.mkdtemp()
    world = ShapesWorld(seed=0)
    images = []
    for i in range(8):
        images.append(os.path.join(calib, f'{i}.jpg'))
        cv2.imwrite(images[-1], world.sample()[0][..., ::-1])
    vocab = encode_vocabulary(model, ['red circle', 'sky', 'blue square'])
    out = {}
    for mode in modes:
        out[mode] = path.replace('.onnx', f'_{mode}.onnx')
        quantize_onnx(path, out[mode], mode, images, vocab)
    return out


if __name__ == '__main__':
    main()

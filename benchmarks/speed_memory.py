"""Speed and memory of MQ-Former against mmdet's Mask2Former R50 (COCO
panoptic config) and DINO R50 (4-scale), side by side in one run on the same
inputs: random weights, CPU threads pinned, median of >= 5 runs after warm-up,
each measurement in a fresh subprocess so its peak memory is its own.

    python benchmarks/speed_memory.py [--runs 5] [--threads 2] [--quick]

Prints markdown tables (latency, peak RSS and ratios to Mask2Former; training
step; text cost; scaling) to paste into benchmarks/README.md.
"""
import argparse
import json
import os
import subprocess
import sys

import torch

from common import (MINILM, REPO, build, coco_classes, make_data,
                    mmdet_config, peak_rss_mb, timeit)

MQ_CFG = f'{REPO}/configs/mqformer/mqformer_r50_8xb2-50e_coco-instance.py'
MODELS = {
    'Mask2Former R50': (mmdet_config(
        'mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'), {}),
    'DINO R50 4-scale': (mmdet_config('dino/dino-4scale_r50_8xb2-12e_coco.py'),
                         {}),
    'MQ-Former R50 mixed 100+300': (MQ_CFG, dict(query_mode='mixed')),
    'MQ-Former R50 conditional 300': (MQ_CFG, dict(query_mode='conditional')),
    'MQ-Former R50 learnable 100': (MQ_CFG, dict(query_mode='learnable')),
}


def lvis_classes():
    from mmdet.datasets import LVISV1Dataset
    return list(LVISV1Dataset.METAINFO['classes'])


def worker(args):
    """One measurement; prints one JSON line."""
    torch.set_num_threads(args.threads)
    cfg, over = MODELS[args.model]
    over = dict(over)
    if 'MQ-Former' in args.model:
        over['text_encoder'] = MINILM
        if args.num_conditional:
            over['num_conditional_queries'] = args.num_conditional
    model = build(cfg, **over)
    size = (args.h, args.w)
    texts = lvis_classes() if args.vocab == 1203 else coco_classes()
    out = {}
    if args.what == 'infer':
        d = make_data(model, size, texts=texts)
        with torch.no_grad():
            if 'MQ-Former' in args.model and args.cold_text:
                enc = model.text_encoder
                t_cold = timeit(
                    lambda: (enc.clear_cache(),
                             model.predict(d['inputs'], d['data_samples'])),
                    args.runs)
                out['cold_s'] = t_cold
            out['seconds'] = timeit(
                lambda: model.predict(d['inputs'], d['data_samples']),
                args.runs)
            if 'MQ-Former' in args.model:
                n = model.text_encoder.num_encoded
                model.predict(d['inputs'], d['data_samples'])
                out['text_calls_on_repeat'] = model.text_encoder.num_encoded - n
    else:
        model.train()
        d = make_data(model, size, texts=texts, batch=2, training=True)
        opt = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-5)

        def step():
            losses = model.loss(d['inputs'], d['data_samples'])
            loss = sum(v for k, v in losses.items() if 'loss' in k)
            opt.zero_grad()
            loss.backward()
            opt.step()

        out['seconds'] = timeit(step, args.runs)
    out['peak_rss_mb'] = peak_rss_mb()
    print('RESULT ' + json.dumps(out))


def measure(model, what='infer', h=512, w=512, runs=5, threads=2,
            vocab=80, num_conditional=0, cold_text=False):
    cmd = [sys.executable, __file__, '--worker', '--model', model,
           '--what', what, '--h', str(h), '--w', str(w), '--runs', str(runs),
           '--threads', str(threads), '--vocab', str(vocab),
           '--num-conditional', str(num_conditional)]
    if cold_text:
        cmd.append('--cold-text')
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE='1')
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.abspath(__file__)))
    for line in out.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    raise RuntimeError(f'{model} {what} failed:\n{out.stderr[-3000:]}')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--worker', action='store_true')
    p.add_argument('--model')
    p.add_argument('--what', default='infer')
    p.add_argument('--h', type=int, default=512)
    p.add_argument('--w', type=int, default=512)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--vocab', type=int, default=80)
    p.add_argument('--num-conditional', type=int, default=0)
    p.add_argument('--cold-text', action='store_true')
    p.add_argument('--quick', action='store_true',
                   help='512 px inference and the text cost only')
    args = p.parse_args()
    if args.worker:
        return worker(args)
    R, T = args.runs, args.threads
    ref = 'Mask2Former R50'
    sizes = [(512, 512)] if args.quick else [(512, 512), (800, 1333)]
    print(f'CPU, {T} threads, median of {R} after 1 warm-up, random weights')
    for h, w in sizes:
        res = {m: measure(m, 'infer', h, w, R, T) for m in MODELS}
        print(f'\n### inference {h}x{w}, batch 1 (predict, post-processing '
              'included)\n')
        print('| model | latency (s) | vs Mask2Former | peak RSS (MB) | '
              'vs Mask2Former |\n| --- | --- | --- | --- | --- |')
        for m, r in res.items():
            print(f'| {m} | {r["seconds"]:.2f} | '
                  f'{r["seconds"] / res[ref]["seconds"]:.2f}x | '
                  f'{r["peak_rss_mb"]:.0f} | '
                  f'{r["peak_rss_mb"] / res[ref]["peak_rss_mb"]:.2f}x |')
        mixed = res['MQ-Former R50 mixed 100+300']['seconds']
        cond = res['MQ-Former R50 conditional 300']['seconds']
        print(f'\nmixed-query overhead over conditional-only: '
              f'{100 * (mixed / cond - 1):+.1f}%')
    mq = 'MQ-Former R50 mixed 100+300'
    t80 = measure(mq, 'infer', 512, 512, R, T, vocab=80, cold_text=True)
    t1203 = measure(mq, 'infer', 512, 512, R, T, vocab=1203, cold_text=True)
    print('\n### text cost (512x512, mixed)\n')
    print('| vocabulary | cached (s) | first call, text encoded (s) | '
          'text-model calls on repeat |\n| --- | --- | --- | --- |')
    for n, r in ((80, t80), (1203, t1203)):
        print(f'| {n} | {r["seconds"]:.2f} | {r["cold_s"]:.2f} | '
              f'{r["text_calls_on_repeat"]} |')
    print(f'\n1,203 vs 80 classes (cached): '
          f'{t1203["seconds"] / t80["seconds"]:.2f}x')
    if args.quick:
        return
    res = {m: measure(m, 'train', 512, 512, R, T) for m in MODELS}
    print('\n### training step, batch 2, 512x512 (forward, backward, AdamW)\n')
    print('| model | step (s) | vs Mask2Former | peak RSS (MB) |\n'
          '| --- | --- | --- | --- |')
    for m, r in res.items():
        print(f'| {m} | {r["seconds"]:.2f} | '
              f'{r["seconds"] / res[ref]["seconds"]:.2f}x | '
              f'{r["peak_rss_mb"]:.0f} |')
    print('\n### scaling (mixed, inference)\n')
    print('| image side | latency (s) | per megapixel (s) |\n| --- | --- | --- |')
    for side in (256, 512, 768, 1024):
        r = measure(mq, 'infer', side, side, R, T)
        print(f'| {side} | {r["seconds"]:.2f} | '
              f'{r["seconds"] / (side * side / 1e6):.2f} |')
    print('\n| conditional queries (+100 learnable) | latency 512 (s) |\n'
          '| --- | --- |')
    for nc in (100, 300, 900):
        r = measure(mq, 'infer', 512, 512, R, T, num_conditional=nc)
        print(f'| {nc} | {r["seconds"]:.2f} |')


if __name__ == '__main__':
    main()

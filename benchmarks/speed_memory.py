"""Speed and memory of MQ-Former against mmdet's Mask2Former R50 (COCO
panoptic config) and DINO R50 (4-scale), side by side on the same inputs:
random weights, CPU threads pinned, median of >= 5 runs after warm-up.

Latency: every model of a table is built in ONE process and called
round-robin (A B C A B C ...), so that the noise of a shared machine hits
all of them alike and the ratios hold. Peak memory: one fresh subprocess per
model (a process's peak RSS is only its own there).

    python benchmarks/speed_memory.py [--runs 5] [--threads 2]
        [--train-size 384] [--malloc retain|stock] [--quick]

Prints markdown tables (latency, peak RSS and ratios to the same-kernel
Mask2Former - mmdet's Mask2Former given MQ-Former's attention paths by the
``FastAttention`` config key - with stock Mask2Former as a second row;
training step; text cost; scaling) to paste into benchmarks/README.md.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from common import (MINILM, REPO, build, coco_classes, make_data,
                    mmdet_config, peak_rss_mb, timeit_interleaved)

MQ_CFG = f'{REPO}/configs/mqformer/mqformer_r50_8xb2-50e_coco-instance.py'
M2F, MQ = 'Mask2Former R50', 'MQ-Former R50 mixed 100+300'
MQ_COND = 'MQ-Former R50 conditional 300'
MQ_ALL_DN = 'MQ-Former R50 mixed (masks of every DN group)'
M2F_CPU_ATTN = 'Mask2Former R50 with our CPU attention paths'
REF = M2F_CPU_ATTN  # every ratio is against the same-kernel peer
M2F_CFG = mmdet_config(
    'mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py')
MODELS = {
    M2F: (M2F_CFG, {}),
    # the reference: the peer given the attention paths MQ-Former uses, by
    # config (type='FastAttention': use_cpu_deformable_attention and
    # use_sdpa_attention at build), as any mmdet model can have them
    M2F_CPU_ATTN: (M2F_CFG, {'type': 'FastAttention',
                             'model_type': 'Mask2Former'}),
    'DINO R50 4-scale': (mmdet_config('dino/dino-4scale_r50_8xb2-12e_coco.py'),
                         {}),
    MQ: (MQ_CFG, dict(query_mode='mixed')),
    MQ_COND: (MQ_CFG, dict(query_mode='conditional')),
    'MQ-Former R50 learnable 100': (MQ_CFG, dict(query_mode='learnable')),
    # MaskDINO's recipe: the masks of every denoising group are supervised
    MQ_ALL_DN: (MQ_CFG, {'query_mode': 'mixed',
                         'bbox_head.num_dn_mask_groups': None}),
}

# same at test / a training-only comparison
INFER_MODELS = (REF, ) + tuple(m for m in MODELS
                               if m not in (MQ_ALL_DN, REF))


SECTIONS = ('infer512', 'infer800', 'text', 'train', 'scaling')


def lvis_classes():
    from mmdet.datasets import LVISV1Dataset
    return list(LVISV1Dataset.METAINFO['classes'])


def build_case(case: dict, training: bool):
    """A case is ``dict(model, h, w[, vocab][, num_conditional])``;
    returns the model and a preprocessed batch (1 image, 2 in training)."""
    cfg, over = MODELS[case['model']]
    over = dict(over)
    if 'MQ-Former' in case['model']:
        over['text_encoder'] = MINILM
        if case.get('num_conditional'):
            over['num_conditional_queries'] = case['num_conditional']
    model = build(cfg, **over)
    texts = lvis_classes() if case.get('vocab') == 1203 else coco_classes()
    if training:
        model.train()
        if hasattr(model, 'text_encoder'):
            # steady state of a training run: every (name, template) pair is
            # cached after its first draws (12 templates x 80 names)
            model.text_encoder.warm_cache(texts)
    data = make_data(model, (case['h'], case['w']), texts=texts,
                     batch=2 if training else 1, training=training)
    return model, data


def infer_fn(model, data):
    def run():
        with torch.no_grad():
            model.predict(data['inputs'], data['data_samples'])
    return run


def train_fn(model, data):
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        losses = model.loss(data['inputs'], data['data_samples'])
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def worker(args):
    """One job; prints one JSON line ``RESULT {...}``."""
    torch.set_num_threads(args.threads)
    if args.malloc == 'retain':  # as tools/train.py does on the CPU
        from mqformer.engine import retain_freed_memory
        retain_freed_memory()
    cases = json.loads(args.cases)
    training = args.what in ('train', 'peak-train')
    fns, models = {}, {}
    for i, case in enumerate(cases):
        model, data = build_case(case, training)
        models[str(i)] = (model, data)
        fns[str(i)] = (train_fn if training else infer_fn)(model, data)
    out = {}
    if args.what.startswith('peak'):  # one case, one call
        fns['0']()
        out['peak_rss_mb'] = peak_rss_mb()
    elif args.what == 'text':
        # one model, two vocabularies; cold = cache cleared before the call
        model, d80 = models['0']
        d1203 = make_data(model, (cases[0]['h'], cases[0]['w']),
                          texts=lvis_classes())
        enc = model.text_encoder

        def cold(d):
            def run():
                enc.clear_cache()
                infer_fn(model, d)()
            return run
        out = timeit_interleaved({'cached80': infer_fn(model, d80),
                                  'cached1203': infer_fn(model, d1203)},
                                 args.runs)
        # a first call encodes every name x template: 3 runs are plenty
        out.update(timeit_interleaved(
            {'cold80': cold(d80), 'cold1203': cold(d1203)},
            min(args.runs, 3), warmup=0))
        for key, d in (('80', d80), ('1203', d1203)):
            infer_fn(model, d)()
            n = enc.num_encoded
            infer_fn(model, d)()
            out[f'calls_on_repeat{key}'] = enc.num_encoded - n
    elif training:
        raw = {}
        out = timeit_interleaved(fns, args.runs, raw=raw)
        for k, times in raw.items():
            out[f'min{k}'], out[f'max{k}'] = min(times), max(times)
    else:
        # post-processing cost depends on how many distinct queries reach
        # the top-k, which random weights decide: time the network apart
        post = {k: post_timer(m) for k, (m, _) in models.items()}
        raw = {}
        out = timeit_interleaved(fns, args.runs, raw=raw)
        for k, total in raw.items():
            calls = post[k][-len(total):]
            out[f'net{k}'] = statistics.median(
                t - p for t, p in zip(total, calls))
    print('RESULT ' + json.dumps(out))


def post_timer(model) -> list:
    """Wraps the model's post-processing (MQ-Former's ``MQFusionHead``,
    Mask2Former's ``MaskFormerFusionHead``, DINO's ``predict_by_feat``);
    returns the list that gets each call's seconds (one call per batch)."""
    if hasattr(model, 'fusion_head'):
        head, name = model.fusion_head, 'predict'
    elif hasattr(model, 'panoptic_fusion_head'):
        head, name = model.panoptic_fusion_head, 'predict'
    else:
        head, name = model.bbox_head, 'predict_by_feat'
    fn, seconds = getattr(head, name), []

    def timed(*args, **kwargs):
        t = time.perf_counter()
        result = fn(*args, **kwargs)
        seconds.append(time.perf_counter() - t)
        return result
    setattr(head, name, timed)
    return seconds


MALLOC = 'retain'  # --malloc, passed to every worker


def run_worker(what, cases, runs, threads):
    cmd = [sys.executable, __file__, '--worker', '--what', what,
           '--cases', json.dumps(cases), '--runs', str(runs),
           '--threads', str(threads), '--malloc', MALLOC]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE='1')
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.abspath(__file__)))
    for line in out.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    raise RuntimeError(f'{what} {cases} failed:\n{out.stderr[-3000:]}')


def compare(what, h, w, runs, threads, models=tuple(MODELS)):
    """Interleaved times of ``models`` in one process, then each one's peak
    RSS in its own process: {model: (seconds, network seconds or None,
    peak MB)}."""
    cases = [dict(model=m, h=h, w=w) for m in models]
    lat = run_worker(what, cases, runs, threads)
    res = {m: (lat[str(i)], lat.get(f'net{i}'),
               run_worker('peak-' + what, [c], 1, threads)['peak_rss_mb'])
           for i, (m, c) in enumerate(zip(models, cases))}
    spread = {m: (lat[f'min{i}'], lat[f'max{i}'])
              for i, m in enumerate(models) if f'min{i}' in lat}
    return res, spread


def print_table(res, spread=None):
    ref_t, ref_n, ref_m = res[REF]
    net = ref_n is not None
    vs = 'vs same-kernel Mask2Former'
    head = f'| model | time (s) | {vs} |'
    if spread:
        head += ' min-max (s) | ratio range |'
    if net:
        head += f' network only (s) | {vs} |'
    print(head + f' peak RSS (MB) | {vs} |\n' +
          '| --- ' * (head.count('|') + 1) + '|')
    for m, (t, n, mem) in res.items():
        row = f'| {m} | {t:.2f} | {t / ref_t:.2f}x |'
        if spread:
            (lo, hi), (rlo, rhi) = spread[m], spread[REF]
            # the extremes of this model against the peer's opposite ones
            row += f' {lo:.2f}-{hi:.2f} | {lo / rhi:.2f}-{hi / rlo:.2f}x |'
        if net:
            row += f' {n:.2f} | {n / ref_n:.2f}x |'
        print(row + f' {mem:.0f} | {mem / ref_m:.2f}x |')
    if MQ in res and MQ_COND in res:
        print(f'\nmixed-query overhead over conditional-only: '
              f'{100 * (res[MQ][0] / res[MQ_COND][0] - 1):+.1f}%' +
              (f' end to end, '
               f'{100 * (res[MQ][1] / res[MQ_COND][1] - 1):+.1f}% '
               'network only' if net else ''))


def linear_fit(xs, ys):
    """Least squares y = a + b x; returns a, b, R^2."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx)**2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x)**2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my)**2 for y in ys)
    return a, b, 1 - ss_res / ss_tot


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--worker', action='store_true')
    p.add_argument('--what', default='infer')
    p.add_argument('--cases', default='[]')
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--train-size', type=int, default=384,
                   help='side of the training images (batch 2)')
    p.add_argument('--sections', default=','.join(SECTIONS),
                   help=f'comma-separated subset of {SECTIONS}')
    p.add_argument('--models', default='',
                   help='training table: comma-separated subset of '
                   f'{list(MODELS)} (both Mask2Former rows are always '
                   'measured)')
    p.add_argument('--malloc', default='retain', choices=['retain', 'stock'],
                   help='retain: freed memory kept for reuse, as '
                   'tools/train.py sets for CPU training (every model of a '
                   'table alike); stock: glibc\'s defaults')
    p.add_argument('--quick', action='store_true',
                   help='512 px inference and the text cost only')
    args = p.parse_args()
    if args.worker:
        return worker(args)
    global MALLOC
    MALLOC = args.malloc
    R, T = args.runs, args.threads
    sections = ('infer512', 'text') if args.quick else \
        args.sections.split(',')
    print(f'CPU, {T} threads, median of {R} after 1 warm-up, random weights, '
          f'latency interleaved in one process, malloc {args.malloc}')
    for sec, (h, w) in (('infer512', (512, 512)), ('infer800', (800, 1333))):
        if sec not in sections:
            continue
        print(f'\n### inference {h}x{w}, batch 1 (predict, post-processing '
              'included)\n')
        print_table(compare('infer', h, w, R, T, INFER_MODELS)[0])

    if 'text' in sections:
        text_cost(R, T)
    if 'train' in sections:
        S = args.train_size
        print(f'\n### training step, batch 2, {S}x{S} (forward, backward, '
              'AdamW)\n')
        models = args.models.split(',') if args.models else tuple(MODELS)
        models = [REF, M2F] + [m for m in models if m not in (REF, M2F)]
        print_table(*compare('train', S, S, R, T, models))
    if 'scaling' in sections:
        scaling(R, T)


def text_cost(R, T):
    # one mixed model; the worker adds the 1,203-name batch itself
    t = run_worker('text', [dict(model=MQ, h=512, w=512, vocab=80)], R, T)
    print('\n### text cost (512x512, mixed)\n')
    print('| vocabulary | cached (s) | first call, text encoded (s) | '
          'text-model calls on repeat |\n| --- | --- | --- | --- |')
    for n in (80, 1203):
        print(f'| {n} | {t[f"cached{n}"]:.2f} | {t[f"cold{n}"]:.2f} | '
              f'{t[f"calls_on_repeat{n}"]} |')
    print(f'\n1,203 vs 80 classes (cached): '
          f'{t["cached1203"] / t["cached80"]:.2f}x')


def scaling(R, T):
    sides = (256, 512, 768, 1024)
    r = run_worker('infer', [dict(model=MQ, h=s, w=s) for s in sides], R, T)
    secs = [r[str(i)] for i in range(len(sides))]
    a, b, r2 = linear_fit([s * s / 1e6 for s in sides], secs)
    print('\n### scaling (mixed, inference)\n')
    print('| image side | megapixels | latency (s) | s per megapixel |\n'
          '| --- | --- | --- | --- |')
    for s, sec in zip(sides, secs):
        print(f'| {s} | {s * s / 1e6:.3f} | {sec:.2f} | '
              f'{sec / (s * s / 1e6):.2f} |')
    print(f'\nlinear fit: latency = {a:.2f} s + {b:.2f} s/MP x megapixels, '
          f'R^2 = {r2:.4f}')
    nums = (100, 300, 900)
    r = run_worker('infer', [dict(model=MQ, h=512, w=512, num_conditional=n)
                             for n in nums], R, T)
    print('\n| conditional queries (+100 learnable) | latency 512 (s) | '
          'vs 300 |\n| --- | --- | --- |')
    for i, n in enumerate(nums):
        print(f'| {n} | {r[str(i)]:.2f} | {r[str(i)] / r["1"]:.2f}x |')


if __name__ == '__main__':
    main()

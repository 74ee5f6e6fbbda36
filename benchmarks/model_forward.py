"""Forward time and parameters: MQ-Former R50 (mixed 100 + 300, 9 decoder
layers) against mmdet's Mask2Former R50 (coco-panoptic config), side by side,
same input (calls interleaved round-robin in one process), random
weights, CPU threads pinned; plus one Swin-L forward.

    python benchmarks/model_forward.py [--size 512] [--runs 5] [--threads 2]
"""
import argparse

import torch

from common import (MINILM, REPO, build, make_data, mmdet_config, n_params,
                    timeit, timeit_interleaved)


def forward_fn(model, data):
    def run():
        with torch.no_grad():
            model._forward(data['inputs'], data['data_samples'])
    return run


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--skip-swin-l', action='store_true')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size = (args.size, args.size)
    rows, fns = [], {}
    m2f = build(mmdet_config('mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'))
    name = 'mmdet Mask2Former R50'
    rows.append((name, n_params(m2f)))
    fns[name] = forward_fn(m2f, make_data(m2f, size))
    for mode in ('mixed', 'conditional', 'learnable'):
        mq = build(f'{REPO}/configs/mqformer/mqformer_r50_8xb2-50e_coco-instance.py',
                   text_encoder=MINILM, query_mode=mode)
        d = make_data(mq, size)
        with torch.no_grad():
            mq.encode_texts(d['data_samples'])  # fill the text cache
        name = (f'MQ-Former R50 {mode} ({mq.num_learnable}+'
                f'{mq.num_conditional})')
        rows.append((name, n_params(mq)))
        fns[name] = forward_fn(mq, d)
    times = timeit_interleaved(fns, args.runs)  # round-robin, same noise
    rows = [(name, params, times[name]) for name, params in rows]
    t_m2f = rows[0][2]
    if not args.skip_swin_l:
        mq = build(f'{REPO}/configs/mqformer/mqformer_swin-l_8xb2-50e_coco-instance.py',
                   text_encoder=MINILM)
        d = make_data(mq, size)
        t = timeit(forward_fn(mq, d), 1, 0)
        rows.append(('MQ-Former Swin-L mixed (100+300)', n_params(mq), t))
    print(f'\nforward at {size[0]}x{size[1]}, batch 1, {args.threads} threads, '
          f'median of {args.runs}\n')
    print('| model | params (M, w/o text model) | forward (s) | vs Mask2Former |')
    print('| --- | --- | --- | --- |')
    for name, params, t in rows:
        print(f'| {name} | {params:.1f} | {t:.3f} | {t / t_m2f:.2f}x |')


if __name__ == '__main__':
    main()

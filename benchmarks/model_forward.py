"""Forward time and parameters: MQ-Former R50 (mixed 100 + 300, 9 decoder
layers) against mmdet's Mask2Former R50 (coco-panoptic config), side by side,
same input, random weights, CPU threads pinned; plus one Swin-L forward.

    python benchmarks/model_forward.py [--size 512] [--runs 5] [--threads 2]
"""
import argparse

import torch

from common import (MINILM, REPO, build, coco_classes, make_data,
                    mmdet_config, n_params, timeit)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--size', type=int, default=512)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--skip-swin-l', action='store_true')
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    size = (args.size, args.size)
    rows = []
    m2f = build(mmdet_config('mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'))
    d = make_data(m2f, size)
    with torch.no_grad():
        t_m2f = timeit(lambda: m2f._forward(d['inputs'], d['data_samples']),
                       args.runs)
    rows.append(('mmdet Mask2Former R50', n_params(m2f), t_m2f))
    del m2f
    for mode in ('mixed', 'conditional', 'learnable'):
        mq = build(f'{REPO}/configs/mqformer/mqformer_r50_8xb2-50e_coco-instance.py',
                   text_encoder=MINILM, query_mode=mode)
        d = make_data(mq, size)
        with torch.no_grad():
            mq.encode_texts(d['data_samples'])  # fill the text cache
            t = timeit(lambda: mq._forward(d['inputs'], d['data_samples']),
                       args.runs)
        rows.append((f'MQ-Former R50 {mode} ({mq.num_learnable}+'
                     f'{mq.num_conditional})', n_params(mq), t))
        del mq
    if not args.skip_swin_l:
        mq = build(f'{REPO}/configs/mqformer/mqformer_swin-l_8xb2-50e_coco-instance.py',
                   text_encoder=MINILM)
        d = make_data(mq, size)
        with torch.no_grad():
            t = timeit(lambda: mq._forward(d['inputs'], d['data_samples']), 1, 0)
        rows.append(('MQ-Former Swin-L mixed (100+300)', n_params(mq), t))
    print(f'\nforward at {size[0]}x{size[1]}, batch 1, {args.threads} threads, '
          f'median of {args.runs}\n')
    print('| model | params (M, w/o text model) | forward (s) | vs Mask2Former |')
    print('| --- | --- | --- | --- |')
    for name, params, t in rows:
        print(f'| {name} | {params:.1f} | {t:.3f} | {t / t_m2f:.2f}x |')


if __name__ == '__main__':
    main()

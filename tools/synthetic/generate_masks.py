# Box-prompted SAM masks for a COCO-format detection set (-> the "-syn-m" set).
#   python tools/synthetic/generate_masks.py ANN_JSON IMG_DIR \
#       --model facebook/sam-vit-huge --out OUT.json [--shard i/N] \
#       [--min-score 0.5] [--batch-size 16] [--device cuda] [--limit 10]
# Resumable: per-image results go to OUT.json.work/ (atomic renames); a rerun
# skips finished images. With --shard only that shard runs; afterwards run
# once more with --merge-only (or without --shard) to write OUT.json.
import argparse
import os

from mqformer.synthetic import SamBoxMasker, merge, run_images
from mqformer.synthetic.runner import load_coco


def parse_args():
    p = argparse.ArgumentParser(description='SAM masks from boxes')
    p.add_argument('ann_file', help='COCO-format json with boxes')
    p.add_argument('img_dir', help='image folder')
    p.add_argument('--model', required=True,
                   help='SAM checkpoint: local folder or hub id')
    p.add_argument('--out', required=True, help='output COCO json')
    p.add_argument('--work-dir', help='per-image results (default OUT.work)')
    p.add_argument('--shard', help='i/N: process every N-th image from i')
    p.add_argument('--merge-only', action='store_true')
    p.add_argument('--min-score', type=float, default=0.0,
                   help="drop masks whose SAM predicted IoU is below this")
    p.add_argument('--box-pad', type=float, default=0.1)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--device', default='cpu')
    p.add_argument('--limit', type=int, help='only the first N images (dry run)')
    return p.parse_args()


def main():
    args = parse_args()
    coco = load_coco(args.ann_file)
    work = args.work_dir or args.out + '.work'
    if not args.merge_only:
        masker = SamBoxMasker(args.model, args.device, args.batch_size,
                              args.box_pad)
        n = run_images(coco, args.img_dir, work, masker, args.shard,
                       args.limit, desc='SAM masks')
        print(f'annotated {n} images into {work}')
        if args.shard or args.limit is not None:
            return
    counts = merge(coco, work, args.out,
                   keep=lambda f: f['sam_score'] >= args.min_score
                   and f['area'] > 0)
    print(f'wrote {args.out}: {counts["kept"]} masks, {counts["dropped"]} '
          f'dropped (score < {args.min_score} or empty)')


if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    main()

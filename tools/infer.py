# Run MQ-Former on images with your own texts, for any task.
#   python tools/infer.py INPUTS... --texts "sky" "red circle" \
#       --task panoptic|instance|semantic|referring|foreground|detection \
#       --config CFG --weights CKPT --out-dir DIR [--stuff sky]
# INPUTS: image files, folders or globs. Writes DIR/<name>.jpg (overlay) and
# DIR/<name>.json (RLE masks, boxes, scores, texts). An unreadable image is
# reported and skipped; the others are still processed (exit code 1 then).
import argparse
import glob
import os
import os.path as osp
import sys

from tqdm import tqdm

IMG_EXT = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args():
    p = argparse.ArgumentParser(description='MQ-Former inference')
    p.add_argument('inputs', nargs='+', help='image files, folders or globs')
    p.add_argument('--texts', nargs='+', required=True,
                   help='class names or referring expressions')
    p.add_argument('--task', default='panoptic',
                   choices=['panoptic', 'instance', 'semantic', 'referring',
                            'foreground', 'detection'])
    p.add_argument('--stuff', nargs='*', default=[],
                   help='texts that are stuff (one segment each, panoptic)')
    p.add_argument('--config', required=True)
    p.add_argument('--weights', default=None)
    p.add_argument('--out-dir', default='outputs')
    p.add_argument('--device', default='cpu')
    p.add_argument('--score-thr', type=float, default=0.3)
    return p.parse_args()


def collect(inputs):
    files = []
    for item in inputs:
        if osp.isdir(item):
            files += sorted(
                osp.join(item, f) for f in os.listdir(item)
                if f.lower().endswith(IMG_EXT))
        elif any(c in item for c in '*?['):
            files += sorted(glob.glob(item))
        else:
            files.append(item)  # a missing file is reported when read
    return files


def main():
    args = parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from mqformer.apis import MQFormerInferencer
    files = collect(args.inputs)
    if not files:
        sys.exit(f'no images found in {args.inputs}')
    inferencer = MQFormerInferencer(args.config, args.weights, args.device,
                                    score_thr=args.score_thr)
    failed = []
    for path in tqdm(files, desc='images', disable=len(files) < 2):
        try:
            inferencer(path, args.texts, task=args.task,
                       stuff_texts=args.stuff, out_dir=args.out_dir)
        except (OSError, ValueError) as e:
            failed.append(path)
            print(f'error: {path}: {e}', file=sys.stderr)
    print(f'{len(files) - len(failed)} of {len(files)} images done; results '
          f'in {args.out_dir}')
    if failed:
        sys.exit(1)


if __name__ == '__main__':
    main()

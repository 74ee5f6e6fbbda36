# Write the generated shapes world in real dataset formats.
#   python tools/dataset_converters/make_shapes_world.py data/shapes_world \
#       --train 200 --val 40
import argparse
import os.path as osp

from mqformer.testing import (ShapesWorld, write_coco_instances,
                              write_coco_panoptic)


def parse_args():
    p = argparse.ArgumentParser(description='Generate the shapes world')
    p.add_argument('out', help='output root, e.g. data/shapes_world')
    p.add_argument('--train', type=int, default=200, help='training images')
    p.add_argument('--val', type=int, default=40, help='validation images')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--gray-prob', type=float, default=0.1)
    p.add_argument('--force', action='store_true',
                   help='regenerate even if the annotation files exist')
    return p.parse_args()


def main():
    args = parse_args()
    done = osp.join(args.out, 'annotations', 'panoptic_val.json')
    if osp.exists(done) and not args.force:
        print(f'{args.out} exists (use --force to regenerate)')
        return
    for split, n, seed in (('train', args.train, args.seed),
                           ('val', args.val, args.seed + 1)):
        write_coco_instances(args.out, ShapesWorld(seed=seed,
                                                   gray_prob=args.gray_prob),
                             n, split)
        write_coco_panoptic(args.out, ShapesWorld(seed=seed,
                                                  gray_prob=args.gray_prob),
                            n, split)
    print(f'wrote {args.train} train and {args.val} val images to {args.out}')


if __name__ == '__main__':
    main()

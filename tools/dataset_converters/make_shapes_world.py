# Write the generated shapes world in real dataset formats, for every task:
#   <out>/{train,val}/*.jpg + annotations/{instances,panoptic}_{train,val}.json
#       + annotations/panoptic_{train,val}/*.png          (instance, panoptic)
#   <out>/ade/images|annotations/{training,validation}/  (semantic, same images
#       as <out>/{train,val})
#   <out>/refcoco/{train2014/, refcoco/instances.json, refcoco/refs(unc).p}
#       (referring; splits train / val)
#   <out>/fg/{train,val}/{images,masks}/                  (foreground)
#
#   python tools/dataset_converters/make_shapes_world.py data/shapes_world \
#       --train 200 --val 40
import argparse
import os.path as osp

from mqformer.testing import (ShapesWorld, write_ade_semantic,
                              write_coco_instances, write_coco_panoptic,
                              write_foreground, write_refcoco)


def parse_args():
    p = argparse.ArgumentParser(description='Generate the shapes world')
    p.add_argument('out', help='output root, e.g. data/shapes_world')
    p.add_argument('--train', type=int, default=200, help='training images')
    p.add_argument('--val', type=int, default=40, help='validation images')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--gray-prob', type=float, default=0.1)
    p.add_argument('--max-objects', type=int, default=5)
    p.add_argument('--force', action='store_true',
                   help='regenerate even if the data exists')
    return p.parse_args()


def main():
    args = parse_args()
    done = osp.join(args.out, 'fg', 'val', 'masks')
    if osp.isdir(done) and not args.force:
        print(f'{args.out} exists (use --force to regenerate)')
        return

    def world(seed):
        return ShapesWorld(seed=seed, gray_prob=args.gray_prob,
                           max_objects=args.max_objects)

    for split, ade_split, n, seed in (
            ('train', 'training', args.train, args.seed),
            ('val', 'validation', args.val, args.seed + 1)):
        write_coco_instances(args.out, world(seed), n, split)
        write_coco_panoptic(args.out, world(seed), n, split)
        write_ade_semantic(osp.join(args.out, 'ade'), world(seed), n,
                           ade_split)
        write_foreground(osp.join(args.out, 'fg', split), world(seed + 100), n)
    # referring: images split round-robin into train and val refs
    write_refcoco(osp.join(args.out, 'refcoco'), world(args.seed + 200),
                  args.train + args.val,
                  splits=['train'] * max(1, args.train // max(args.val, 1)) +
                  ['val'])
    print(f'wrote {args.train} train and {args.val} val images per task to '
          f'{args.out}')


if __name__ == '__main__':
    main()

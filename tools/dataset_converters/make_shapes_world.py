# Write the generated shapes world in real dataset formats, for every task:
#   <out>/{train,val}/*.jpg + annotations/{instances,panoptic}_{train,val}.json
#       + annotations/panoptic_{train,val}/*.png          (instance, panoptic)
#   <out>/ade/images|annotations/{training,validation}/  (semantic, same images
#       as <out>/{train,val})
#   <out>/refcoco/{train2014/, refcoco/instances.json, refcoco/refs(unc).p}
#       (referring; splits train / val)
#   <out>/fg/{train,val}/{images,masks}/                  (foreground)
#   <out>/vg/{images/, vg_odvg.jsonl}   (grounding boxes + phrases, training)
# With --hold-out NAME... (either preset), those '<color> <shape>' classes
# are never drawn nor named in any of the files above, and
#   <out>/openvocab/{val/, annotations/instances_val.json}
# is an instance set whose categories are the held-out names only (each
# held-out name's colour also appears on another, seen, shape, unlabelled):
# the never-seen-names column of the query ablation (a SeginW analogue).
#
#   <out>/calib/ + annotations/{instances,panoptic}_calib.json  (--calib N:
#       validation images for choosing post-processing thresholds, disjoint
#       from the val images in content, file names and image ids)
#
#   python tools/dataset_converters/make_shapes_world.py data/shapes_world \
#       --train 200 --val 200 [--hold-out 'purple triangle' 'orange circle']
#   python tools/dataset_converters/make_shapes_world.py data/crowded_world \
#       --preset crowded
# Presets: 'shapes' (the demo's world: 18 thing names, 4 stuff in bands, 1-5
# things per image) and 'crowded' (COCO-like: 48 thing names, 10 stuff names
# in irregular regions, 10-40 things per image from 3 px to large, heavy
# occlusion, image sides 112-256 px of any aspect ratio).
# <out>/world.json records the settings; a world made with other settings (or
# not finished) is made again, its folders above removed first; an identical
# one is kept. Folders of a world without world.json are never removed.
import argparse
import json
import os
import os.path as osp
import shutil

from mqformer.testing import (ShapesWorld, write_ade_semantic,
                              write_coco_instances, write_coco_panoptic,
                              write_foreground, write_odvg, write_refcoco)
from mqformer.testing.shapes_world import (COLORS, CROWDED_COLORS,
                                           CROWDED_SHAPES, CROWDED_STUFF,
                                           SHAPES)

OWN_FOLDERS = ('train', 'val', 'calib', 'annotations', 'ade', 'fg',
               'refcoco', 'vg', 'openvocab')
# ShapesWorld settings of each preset (--max-objects overrides max_objects)
PRESETS = dict(
    shapes=dict(),
    crowded=dict(
        things=[f'{c} {s}' for c in CROWDED_COLORS for s in CROWDED_SHAPES],
        stuff=tuple(CROWDED_STUFF),
        size_range=(112, 256),
        min_objects=10,
        max_objects=40,
        object_size=(3, 40),
        max_stuff=5,
        stuff_layout='irregular'))
# the (colours, shapes) a preset's thing names '<colour> <shape>' are made of
PRESET_NAMES = dict(shapes=(COLORS, SHAPES),
                    crowded=(CROWDED_COLORS, CROWDED_SHAPES))
CALIB_FIRST_ID = 1000001  # calibration image ids: disjoint from val's


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Generate the shapes world')
    p.add_argument('out', help='output root, e.g. data/shapes_world')
    p.add_argument('--train', type=int, default=200, help='training images')
    p.add_argument('--val', type=int, default=200, help='validation images')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--gray-prob', type=float, default=0.1)
    p.add_argument('--preset', choices=list(PRESETS), default='shapes',
                   help='the world: shapes (the demo) or crowded (COCO-like)')
    p.add_argument('--calib', type=int, default=0,
                   help='calibration images (threshold choice), disjoint '
                   'from the val images')
    p.add_argument('--max-objects', type=int, default=None,
                   help='things per image at most (shapes: 5, crowded: 40)')
    p.add_argument('--hold-out', nargs='+', default=[], metavar='NAME',
                   help="'<color> <shape>' classes left out of every file "
                   'and evaluated in <out>/openvocab')
    p.add_argument('--force', action='store_true',
                   help='regenerate even if the data exists')
    return p.parse_args(argv)


def open_vocab_pool(held_out, colors=COLORS, shapes=SHAPES):
    """The held-out names and, for each, its colour on the next shape (a
    seen class the model must not confuse with it)."""
    every = [f'{c} {s}' for c in colors for s in shapes]
    bad = [n for n in held_out if n not in every]
    if bad:
        raise SystemExit(f'--hold-out: {bad} are not classes of this world '
                         f'({", ".join(every)})')
    if len(set(held_out)) == len(every):
        raise SystemExit('--hold-out: nothing would be left to train on')
    pool = list(held_out)
    for n in held_out:
        color, shape = n.split(' ')
        pool.append(
            f'{color} {shapes[(shapes.index(shape) + 1) % len(shapes)]}')
    seen = [n for n in every if n not in held_out]
    return every, seen, [n for n in dict.fromkeys(pool)
                         if n in held_out or n in seen]


def main(argv=None):
    args = parse_args(argv)
    every, seen, pool = open_vocab_pool(args.hold_out,
                                        *PRESET_NAMES[args.preset])
    # what the world was made with: a world made with other counts, seed or
    # hold-out is made again (`demo.py --val-images 200` on a 40-image world)
    settings = {k: v for k, v in sorted(vars(args).items())
                if k not in ('out', 'force')}
    stamp = osp.join(args.out, 'world.json')
    made = json.load(open(stamp)) if osp.isfile(stamp) else None
    if made == settings and not args.force:
        print(f'{args.out} exists (use --force to regenerate)')
        return
    # ours: a world.json (finished or not) or a world from before it
    ours = made is not None or osp.isfile(
        osp.join(args.out, 'vg', 'vg_odvg.jsonl'))
    present = [d for d in OWN_FOLDERS if osp.exists(osp.join(args.out, d))]
    if present and not ours and not args.force:
        raise SystemExit(
            f'{args.out} has {present} but no world.json: not a world this '
            'tool finished; pick another folder, or --force to write into it '
            '(the folder then counts as a world of this tool)')
    if present and ours:  # no stale images from a larger world
        why = '--force' if made == settings else f'it was made with {made}'
        print(f'{args.out}: making it again ({why})')
        for d in present:
            shutil.rmtree(osp.join(args.out, d))
    os.makedirs(args.out, exist_ok=True)
    with open(stamp, 'w') as f:  # a killed run leaves an unfinished world
        json.dump(dict(settings, finished=False), f)

    preset = dict(PRESETS[args.preset])
    preset['max_objects'] = args.max_objects or preset.get('max_objects', 5)

    def world(seed, things=seen if args.hold_out else None):
        kw = dict(preset)
        if things is not None:
            kw['things'] = things
        return ShapesWorld(seed=seed, gray_prob=args.gray_prob, **kw)

    for split, ade_split, n, seed in (
            ('train', 'training', args.train, args.seed),
            ('val', 'validation', args.val, args.seed + 1)):
        write_coco_instances(args.out, world(seed), n, split)
        write_coco_panoptic(args.out, world(seed), n, split)
        write_ade_semantic(osp.join(args.out, 'ade'), world(seed), n,
                           ade_split)
        write_foreground(osp.join(args.out, 'fg', split), world(seed + 100), n)
    if args.calib:
        write_coco_instances(args.out, world(args.seed + 2), args.calib,
                             'calib', first_id=CALIB_FIRST_ID)
        write_coco_panoptic(args.out, world(args.seed + 2), args.calib,
                            'calib', first_id=CALIB_FIRST_ID)
    # referring: images split round-robin into train and val refs
    write_refcoco(osp.join(args.out, 'refcoco'), world(args.seed + 200),
                  args.train + args.val,
                  splits=['train'] * max(1, args.train // max(args.val, 1)) +
                  ['val'])
    write_odvg(osp.join(args.out, 'vg'), world(args.seed + 300), args.train)
    if args.hold_out:
        write_coco_instances(osp.join(args.out, 'openvocab'),
                             world(args.seed + 400, things=pool), args.val,
                             'val', keep=args.hold_out)
    with open(stamp, 'w') as f:  # last: marks a finished world
        json.dump(settings, f)
    print(f'wrote {args.train} train and {args.val} val images per task to '
          f'{args.out}' + (f'; held out {args.hold_out}' if args.hold_out
                           else ''))


if __name__ == '__main__':
    main()

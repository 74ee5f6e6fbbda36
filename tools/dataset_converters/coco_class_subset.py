# Keep some categories of a COCO-format annotation file (by name), e.g. to make
# your fine-tuning set, or a seen/unseen split for open-vocabulary evaluation:
#
#   python tools/dataset_converters/coco_class_subset.py IN.json OUT.json \
#       --classes "red circle" "red square" [--rename "red circle=crimson disc"]
#       [--drop-empty]
#
# Annotations of the other categories are removed (their objects become
# unlabelled background); images are kept unless --drop-empty. Category ids
# are kept. Unknown names are an error naming the file.
import argparse
import json
import sys


def parse_args():
    p = argparse.ArgumentParser(description='COCO category subset')
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--classes', nargs='+', required=True)
    p.add_argument('--rename', nargs='*', default=[],
                   help='OLD=NEW: new names for kept categories')
    p.add_argument('--drop-empty', action='store_true',
                   help='drop images left without annotations')
    return p.parse_args()


def class_subset(coco: dict, classes, rename=None, drop_empty=False,
                 name='annotation file') -> dict:
    """A copy of ``coco`` with only the categories named in ``classes``
    (``rename``: {old: new} names)."""
    by_name = {c['name']: c for c in coco.get('categories', [])}
    unknown = [c for c in classes if c not in by_name]
    if unknown:
        raise ValueError(f'{name}: no categories named {unknown}; it has '
                         f'{sorted(by_name)[:20]}...')
    rename = dict(rename or {})
    bad = sorted(set(rename) - set(classes))
    if bad:
        raise ValueError(f'--rename names categories that are not kept: {bad}')
    keep = {by_name[c]['id'] for c in classes}
    out = dict(coco)
    out['categories'] = [
        dict(c, name=rename.get(c['name'], c['name']))
        for c in coco['categories'] if c['id'] in keep
    ]
    out['annotations'] = [a for a in coco.get('annotations', [])
                          if a['category_id'] in keep]
    if drop_empty:
        used = {a['image_id'] for a in out['annotations']}
        out['images'] = [i for i in coco['images'] if i['id'] in used]
    return out


def main():
    args = parse_args()
    rename = {}
    for item in args.rename:
        if '=' not in item:
            sys.exit(f'--rename {item!r}: expected OLD=NEW')
        old, new = item.split('=', 1)
        rename[old] = new
    with open(args.src) as f:
        coco = json.load(f)
    try:
        out = class_subset(coco, args.classes, rename, args.drop_empty,
                           args.src)
    except ValueError as e:
        sys.exit(str(e))
    with open(args.dst, 'w') as f:
        json.dump(out, f)
    print(f'{args.dst}: {len(out["categories"])} categories, '
          f'{len(out["annotations"])} of {len(coco["annotations"])} '
          f'annotations, {len(out["images"])} images')


if __name__ == '__main__':
    main()

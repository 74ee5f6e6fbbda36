"""Fine-tuning on new classes vs the open vocabulary (docs/finetune.md).

On a generated shapes world: train the tiny model on 12 "old" colour-shape
classes, then fine-tune it on 6 "new" ones (the old objects in the new data
are unlabelled) with each variant, and evaluate zero-shot prompts for the old
classes before and after (retention = old mask AP after / before) and the new
classes' AP (zero-shot before, fine-tuned after).

    python benchmarks/finetune_retention.py [--work-dir work_dirs/finetune]
        [--train 200 --val 40] [--base-iters 600] [--ft-iters 200]
        [--variants naive recipe recipe+replay]

Variants: ``naive`` (new data only, the base learning rate, text encoder and
projection trained), ``recipe`` (the config's recipe without replay),
``recipe+replay`` (configs/mqformer/finetune/..., as shipped). A finished step
(base model, each variant) is reused on a rerun.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE_CFG = osp.join(REPO, 'configs/mqformer/mqformer_tiny_shapes-instance.py')
RECIPE_CFG = osp.join(
    REPO, 'configs/mqformer/finetune/'
    'mqformer_tiny_shapes-instance_finetune-new-classes.py')
VARIANTS = ('naive', 'recipe', 'recipe+replay')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--work-dir', default='work_dirs/finetune_retention')
    p.add_argument('--train', type=int, default=200)
    p.add_argument('--val', type=int, default=40)
    p.add_argument('--base-iters', type=int, default=600)
    p.add_argument('--ft-iters', type=int, default=200)
    p.add_argument('--seed', type=int, default=0,
                   help='mmengine randomness seed of every training run')
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=VARIANTS)
    return p.parse_args(argv)


def make_data(root, n_train, n_val, old_colors):
    """Two generated worlds in COCO format: ``old`` (images with the old
    classes only, the base model's data) and ``new`` (all colours, only the
    new classes labelled: instances_{train,val}_new.json)."""
    sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
    from coco_class_subset import class_subset

    from mqformer.testing import ShapesWorld, write_coco_instances
    old_root, new_root = osp.join(root, 'old'), osp.join(root, 'new')
    done = osp.join(new_root, 'annotations', 'instances_val_new.json')
    if osp.isfile(done):
        return old_root, new_root
    for split, n, seed in (('train', n_train, 0), ('val', n_val, 1)):
        write_coco_instances(old_root, ShapesWorld(seed=seed,
                                                   colors=old_colors), n,
                             split)
        ann = write_coco_instances(new_root, ShapesWorld(seed=seed + 2), n,
                                   split)
        with open(ann) as f:
            coco = json.load(f)
        new = [c['name'] for c in coco['categories']
               if c['name'].split()[0] not in old_colors]
        with open(ann.replace('.json', '_new.json'), 'w') as f:
            json.dump(class_subset(coco, new), f)
    return old_root, new_root


def set_data(cfg, dataloader, root, ann, classes):
    """Point ``cfg``'s ``dataloader`` (and its evaluator) at ``root``."""
    ds = cfg[dataloader].dataset
    ds.data_root = root.rstrip('/') + '/'
    ds.ann_file = ann
    ds.metainfo = dict(classes=classes)
    ev = dict(val_dataloader='val_evaluator',
              test_dataloader='test_evaluator').get(dataloader)
    if ev:
        cfg[ev].ann_file = osp.join(root, ann)


def evaluate(ckpt, root, ann, classes, work_dir):
    """Mask and box AP of ``ckpt`` prompted with ``classes`` on the val
    images of ``root`` annotated in ``ann``."""
    from mmengine.config import Config
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo  # its checkpoint scoring (refuses weights that do not fit)
    cfg = Config.fromfile(BASE_CFG)
    set_data(cfg, 'test_dataloader', root, ann, classes)
    cfg.model.test_cfg.max_per_img = 50
    cfg.work_dir = work_dir
    m = demo.score_checkpoint(cfg, ckpt)
    return dict(mask_ap=100 * m['coco/segm_mAP'],
                box_ap=100 * m['coco/bbox_mAP'])


def variant_cfg(name, old_root, new_root, base_ckpt):
    from mmengine.config import Config
    cfg = Config.fromfile(RECIPE_CFG)
    new_ds, replay_ds = cfg.train_dataloader.dataset.datasets
    new_ds.data_root = new_root + '/'
    replay_ds.data_root = old_root + '/'
    set_data(cfg, 'val_dataloader', new_root,
             'annotations/instances_val_new.json', cfg.new_classes)
    cfg.load_from = base_ckpt
    if name in ('naive', 'recipe'):  # the new data alone
        cfg.train_dataloader.sampler = dict(type='DefaultSampler',
                                            shuffle=True)
        cfg.train_dataloader.batch_sampler = dict(
            type='AspectRatioBatchSampler')
        cfg.train_dataloader.dataset = new_ds
    if name == 'naive':  # what fine-tuning does without the recipe
        base = Config.fromfile(BASE_CFG)
        cfg.optim_wrapper = base.optim_wrapper
        cfg.model.text_encoder.frozen = False
    return cfg


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo  # its budgeted training loop
    from mmengine.config import Config

    import mqformer  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    recipe = Config.fromfile(RECIPE_CFG)
    old, new = list(recipe.old_classes), list(recipe.new_classes)
    wd = osp.abspath(args.work_dir)
    root = osp.join(wd, 'data')
    os.makedirs(wd, exist_ok=True)
    old_root, new_root = make_data(root, args.train, args.val,
                                   sorted({c.split()[0] for c in old}))

    def scores(ckpt):
        return dict(
            old=evaluate(ckpt, old_root, 'annotations/instances_val.json',
                         old, osp.join(wd, 'eval')),
            new=evaluate(ckpt, new_root, 'annotations/instances_val_new.json',
                         new, osp.join(wd, 'eval')))
    results_file = osp.join(wd, 'results.json')
    results = json.load(open(results_file)) if osp.isfile(
        results_file) else {}

    def save():
        with open(results_file, 'w') as f:
            json.dump(results, f, indent=1)

    base_ckpt = osp.join(wd, 'base', 'final.pth')
    if 'base' not in results or not osp.isfile(base_ckpt):
        cfg = Config.fromfile(BASE_CFG)
        for dl, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
            set_data(cfg, dl, old_root, f'annotations/instances_{split}.json',
                     old)
        cfg.randomness = dict(seed=args.seed)
        _, base_ckpt, iters, took = demo.train(
            cfg, osp.join(wd, 'base'), 10**6, args.base_iters)
        results['base'] = dict(iters=iters, seconds=took, **scores(base_ckpt))
        save()
    for name in args.variants:
        if name in results:
            continue
        cfg = variant_cfg(name, old_root, new_root, base_ckpt)
        cfg.randomness = dict(seed=args.seed)
        _, ckpt, iters, took = demo.train(
            cfg, osp.join(wd, name.replace('+', '_')), 10**6, args.ft_iters)
        results[name] = dict(iters=iters, seconds=took, **scores(ckpt))
        save()
    b = results['base']
    print(f'\nbase: {b["iters"]} iterations on the 12 old classes '
          f'({b["seconds"]:.0f} s); fine-tuning {args.ft_iters} iterations '
          'on the 6 new ones')
    print('| model | old mask AP | old box AP | retention (mask AP) | new mask '
          'AP | new box AP | fine-tune s |')
    print('|---|---|---|---|---|---|---|')
    print(f'| base (new classes zero-shot) | {b["old"]["mask_ap"]:.1f} | '
          f'{b["old"]["box_ap"]:.1f} | - | {b["new"]["mask_ap"]:.1f} | '
          f'{b["new"]["box_ap"]:.1f} | - |')
    for name in VARIANTS:
        if name not in results:
            continue
        r = results[name]
        ret = r['old']['mask_ap'] / max(b['old']['mask_ap'], 1e-6)
        print(f'| {name} | {r["old"]["mask_ap"]:.1f} | '
              f'{r["old"]["box_ap"]:.1f} | {100 * ret:.0f}% | '
              f'{r["new"]["mask_ap"]:.1f} | {r["new"]["box_ap"]:.1f} | '
              f'{r["seconds"]:.0f} |')
    return results


if __name__ == '__main__':
    main()

# The paper's query ablation (Table 2) at CPU scale: the three query
# strategies (mixed 10 + 20, learnable 30, conditional 30: equal totals) at
# growing data-task scales on the generated shapes world, several seeds each,
# equal wall time per run; prints Table 2's layout as mean +- std.
#
#   python tools/analysis_tools/query_ablation.py [--minutes 3] \
#       [--seeds 0 1 2] [--scales ps ps_ss ps_ss_ref] \
#       [--strategies mixed learnable conditional] \
#       [--work-dir work_dirs/query_ablation]
#
# Scales: ps = panoptic; ps_ss = + semantic (ADE format); ps_ss_ref = + referring
# phrases. Resumable: a finished run (its entry in WORK_DIR/results.json) is
# never repeated, so the runs can span sessions. Run from the repository root
# (the configs read data/shapes_world, generated here if missing).
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STRATEGY_CFG = {
    s: osp.join(REPO, 'configs', 'mqformer',
                f'mqformer_tiny_shapes-panoptic{suffix}.py')
    for s, suffix in (('mixed', ''), ('learnable', '_learnable'),
                      ('conditional', '_conditional'))
}
SCALES = ('ps', 'ps_ss', 'ps_ss_ref')
# Table 2's columns: (header, task, metric key, scale)
COLUMNS = [('mask AP', 'instance', 'coco/segm_mAP', 100),
           ('PQ', 'panoptic', 'coco_panoptic/PQ', 1),
           ('mIoU', 'semantic', 'mIoU', 1)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='MQ-Former query ablation')
    p.add_argument('--work-dir', default='work_dirs/query_ablation')
    p.add_argument('--minutes', type=float, default=3.0,
                   help='training wall time per run')
    p.add_argument('--max-iters', type=int, default=100000)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--scales', nargs='+', default=list(SCALES),
                   choices=SCALES)
    p.add_argument('--strategies', nargs='+', default=list(STRATEGY_CFG),
                   choices=list(STRATEGY_CFG))
    p.add_argument('--train-images', type=int, default=200)
    p.add_argument('--val-images', type=int, default=40)
    return p.parse_args(argv)


def scale_datasets(cfg, scale):
    """The training datasets of ``scale`` from the shapes-world base config
    the strategy configs inherit."""
    sets = [cfg.shapes_panoptic_train]
    if scale in ('ps_ss', 'ps_ss_ref'):
        sem = copy.deepcopy(cfg.shapes_semantic_val)
        sem.pop('test_mode', None)
        sem.data_prefix = dict(img_path='images/training',
                               seg_map_path='annotations/training')
        load, _resize, ann, to_inst, texts, pack = sem.pipeline
        sem.pipeline = [load, ann, *cfg.shapes_tail, to_inst,
                        dict(texts, shuffle=True), pack]
        sets.append(sem)
    if scale == 'ps_ss_ref':
        sets.append(cfg.shapes_referring_train)
    return sets


def run_key(scale, strategy, seed):
    return f'{scale}/{strategy}/seed{seed}'


def one_run(args, scale, strategy, seed):
    """Train one configuration for the wall-time budget and evaluate the
    three Table 2 tasks; returns the row stored in results.json."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo  # the budgeted training loop and the evaluation configs
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mqformer.compat import checkpoint_io
    cfg = Config.fromfile(STRATEGY_CFG[strategy])
    cfg.train_dataloader.dataset.datasets = scale_datasets(cfg, scale)
    # the mixed datasets' metainfo differs (as in the R50 Table 2 mixes)
    cfg.train_dataloader.dataset.ignore_keys = [
        'classes', 'thing_classes', 'stuff_classes', 'palette', 'label_map',
        'reduce_zero_label'
    ]
    cfg.randomness = dict(seed=seed)
    wd = osp.join(args.work_dir, scale, strategy, f'seed{seed}')
    _, ckpt, iters, took = demo.train(cfg, wd, args.minutes, args.max_iters)
    metrics = {}
    for header, task, key, mult in COLUMNS:
        ecfg = Config.fromfile(demo.EVAL_CFG.format(task))
        ecfg.work_dir = osp.join(wd, f'eval_{task}')
        ecfg.load_from = ckpt
        ecfg.log_level = 'WARNING'
        with checkpoint_io():
            m = Runner.from_cfg(ecfg).test()
        metrics[header] = float(m[key]) * mult
    return dict(iters=iters, seconds=took, minutes=args.minutes, **metrics)


def table(results, scales, strategies):
    """Table 2's layout: a row per scale x strategy, mean +- std over the
    finished seeds (n given)."""
    lines = ['| data-task scale | queries | ' +
             ' | '.join(h for h, *_ in COLUMNS) + ' | seeds | iters |',
             '|---' * (len(COLUMNS) + 4) + '|']
    for scale in scales:
        for strategy in strategies:
            rows = [v for k, v in results.items()
                    if k.startswith(f'{scale}/{strategy}/')]
            if not rows:
                continue
            cells = []
            for header, *_ in COLUMNS + [('iters', )]:
                vals = [r[header] for r in rows]
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f'{statistics.mean(vals):.1f} +- {sd:.1f}')
            lines.append(f'| {scale} | {strategy} | ' +
                         ' | '.join(cells[:-1]) + f' | {len(rows)} | '
                         f'{cells[-1]} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    demo.make_world(args.train_images, args.val_images)
    import mqformer  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    os.makedirs(args.work_dir, exist_ok=True)
    store = osp.join(args.work_dir, 'results.json')
    results = json.load(open(store)) if osp.isfile(store) else {}
    todo = [(sc, st, sd) for sc in args.scales for st in args.strategies
            for sd in args.seeds if run_key(sc, st, sd) not in results]
    print(f'[ablation] {len(todo)} runs to do, '
          f'{len(results)} done in {store}')
    for k, (scale, strategy, seed) in enumerate(todo):
        print(f'[ablation] run {k + 1}/{len(todo)}: {scale} {strategy} '
              f'seed {seed}, {args.minutes} min')
        results[run_key(scale, strategy, seed)] = one_run(
            args, scale, strategy, seed)
        with open(store + '.tmp', 'w') as f:  # a killed run leaves the old
            json.dump(results, f, indent=1)
        os.replace(store + '.tmp', store)
    text = table(results, args.scales, args.strategies)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(text + '\n')
    print('\n' + text)
    return results


if __name__ == '__main__':
    main()

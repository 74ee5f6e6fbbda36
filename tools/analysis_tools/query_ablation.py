# The paper's query ablation (Table 2) at CPU scale: the three query
# strategies (mixed, learnable only, conditional only: equal totals) at
# growing data-task scales on a generated world, several seeds each, equal
# wall time per run; prints Table 2's layout as mean +- std.
#
#   python tools/analysis_tools/query_ablation.py [--preset crowded] \
#       [--minutes 3] [--seeds 0 1 2] [--scales ps ps_ss ps_ss_vg_ref] \
#       [--strategies mixed learnable conditional] [--work-dir DIR] \
#       [--eval-at 2 5]
#
# Presets (make_shapes_world.py's): shapes (the demo's world; mixed 10 + 20,
# learnable 30, conditional 30) and crowded (COCO-like, 10-40 things of 55
# seen names per image; 25 + 75, 100, 100, as in fair_comparison.py).
# Scales (as the R50 configs' names): ps = panoptic; ps_ss = + semantic (ADE
# format); ps_ss_vg_ref = + grounding boxes (ODVG) + referring phrases.
# Columns: mask AP, PQ, mIoU on the world's validation images (--val-images,
# 200), and "open-vocab mask AP": instances of class names that no training
# file ever names or draws (the preset's held-out names; the SeginW
# analogue). The world is generated once at --world with those names held
# out. Resumable: a finished run (its entry in --store, a file kept in the
# repository: benchmarks/results/query_ablation[_crowded].json) is never
# repeated, so the runs can be spread over several sittings; each row
# records the commit and date it ran on.
# --eval-at: the same run is also evaluated on its checkpoints at those
# minutes (a learning curve; the points before the budget's learning-rate
# drop), with the mechanism study at every point: the proposal recall of the
# conditional queries and, for mixed runs, how the last decoder layer's
# Hungarian matching shares the ground truth between the two query types.
# Run from the repository root.
import argparse
import copy
import datetime
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
                      ('conditional', '_conditional'),
                      ('mixed_nodual', '_nodual'),
                      ('mixed_thingsel', '_thingsel'),
                      ('mixed_rolematch', '_rolematch'))
}
TABLE2 = ('mixed', 'learnable', 'conditional')  # the default strategies


def query_mode(strategy):
    """The model's ``query_mode`` of a strategy (``mixed_nodual``: mixed
    queries without the dual-query cross-attention; ``mixed_thingsel``:
    conditional queries selected on the thing texts only;
    ``mixed_rolematch``: stuff matched to the learnable queries)."""
    return strategy.split('_')[0]
SCALES = ('ps', 'ps_ss', 'ps_ss_vg_ref')
# never named nor drawn in training; each colour and shape is seen elsewhere
HELD_OUT = ('purple triangle', 'orange circle', 'yellow square')
# each preset's world, held-out names (each colour and shape seen elsewhere)
# and query counts per strategy (learnable, conditional; None: the configs')
PRESETS = dict(
    shapes=dict(world='data/shapes_world_heldout', held_out=HELD_OUT,
                work_dir='work_dirs/query_ablation',
                store='benchmarks/results/query_ablation.json', queries=None),
    crowded=dict(world='data/crowded_world_heldout',
                 held_out=('purple hexagon', 'orange cross', 'cyan diamond',
                           'pink triangle', 'brown square'),
                 work_dir='work_dirs/query_ablation_crowded',
                 store='benchmarks/results/query_ablation_crowded.json',
                 queries=dict(mixed=(25, 75), learnable=(100, 0),
                              conditional=(0, 100))))
SHAPES_ROOT = 'data/shapes_world/'  # what the shapes configs read
# Table 2's columns: (header, task, metric key, scale)
COLUMNS = [('mask AP', 'instance', 'coco/segm_mAP', 100),
           ('PQ', 'panoptic', 'coco_panoptic/PQ', 1),
           ('mIoU', 'semantic', 'mIoU', 1),
           ('open-vocab mask AP', 'openvocab', 'coco/segm_mAP', 100)]
ATTRIBUTION = ('things by conditional %', 'stuff by learnable %')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='MQ-Former query ablation')
    p.add_argument('--preset', choices=list(PRESETS), default='shapes',
                   help='the world: shapes (the demo\'s) or crowded')
    p.add_argument('--work-dir', default=None,
                   help='default: the preset\'s (work_dirs/query_ablation'
                   '[_crowded])')
    p.add_argument('--store', default=None,
                   help='the finished runs (json); default: the preset\'s '
                   '(benchmarks/results/query_ablation[_crowded].json)')
    p.add_argument('--world', default=None,
                   help='the generated world (held-out names left out); '
                   'default: the preset\'s (data/<preset>_world_heldout)')
    p.add_argument('--minutes', type=float, default=3.0,
                   help='training wall time per run')
    p.add_argument('--max-iters', type=int, default=100000)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--scales', nargs='+', default=list(SCALES),
                   choices=SCALES)
    p.add_argument('--strategies', nargs='+', default=list(TABLE2),
                   choices=list(STRATEGY_CFG),
                   help='mixed_nodual: the mixed model without the dual-'
                   'query cross-attention; mixed_thingsel: its conditional '
                   'queries selected on thing texts only; mixed_rolematch: '
                   'stuff matched to its learnable queries (mechanism rows)')
    p.add_argument('--train-images', type=int, default=200)
    p.add_argument('--val-images', type=int, default=200)
    p.add_argument('--eval-at', type=float, nargs='*', default=[],
                   metavar='MINUTES',
                   help='also evaluate the run\'s checkpoints at these '
                   'minutes (a learning curve from one run)')
    args = p.parse_args(argv)
    preset = PRESETS[args.preset]
    args.world = args.world or preset['world']
    args.work_dir = args.work_dir or preset['work_dir']
    args.store = args.store or preset['store']
    return args


def world_settings(world):
    """(preset, held-out names) a generated world was made with (its
    world.json; the shapes preset and HELD_OUT for a world not made yet)."""
    stamp = osp.join(world, 'world.json')
    made = json.load(open(stamp)) if osp.isfile(stamp) else {}
    return (made.get('preset', 'shapes'),
            tuple(made.get('hold_out') or HELD_OUT))


def scale_datasets(cfg, scale):
    """The training datasets of ``scale`` from the shapes-world base config
    the strategy configs inherit."""
    sets = [cfg.shapes_panoptic_train]
    if scale in ('ps_ss', 'ps_ss_vg_ref'):
        sem = copy.deepcopy(cfg.shapes_semantic_val)
        sem.pop('test_mode', None)
        sem.data_prefix = dict(img_path='images/training',
                               seg_map_path='annotations/training')
        load, _resize, ann, to_inst, texts, pack = sem.pipeline
        sem.pipeline = [load, ann, *cfg.shapes_tail, to_inst,
                        dict(texts, shuffle=True), pack]
        sets.append(sem)
    if scale == 'ps_ss_vg_ref':
        sets += [cfg.shapes_grounding_train, cfg.shapes_referring_train]
    return sets


def on_world(node, world):
    """Point a shapes-world config (node) at ``world`` and drop the held-out
    names from every class list, in place; returns node. A crowded world's
    class lists are its own (read from its files, which never name the
    held-out classes)."""
    preset, held_out = world_settings(world)
    if preset != 'shapes':
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        from fair_comparison import on_world as retarget, world_classes
        from mmengine.config import Config
        base = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets',
                                        'shapes_world_multitask.py'))
        return retarget(node, world, *world_classes(world),
                        list(base.shapes_things), list(base.shapes_stuff))
    root = world.rstrip('/') + '/'

    def fix(v):
        if isinstance(v, str) and v.startswith(SHAPES_ROOT):
            return root + v[len(SHAPES_ROOT):]
        if isinstance(v, (list, tuple)) and any(x in held_out for x in v
                                                if isinstance(x, str)):
            return type(v)(x for x in v if x not in held_out)
        if isinstance(v, (list, tuple)):
            return type(v)(fix(x) for x in v)
        if hasattr(v, 'items'):
            for k, x in v.items():
                v[k] = fix(x)
        return v

    return fix(node)


def eval_cfg(task, model, world):
    """The evaluation config of one column for a trained ``model`` config
    (the strategy's own queries; the column's test settings)."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    ecfg = demo.eval_config('instance' if task == 'openvocab' else task,
                            model)
    on_world(ecfg, world)
    if task == 'openvocab':  # only the held-out names, as their own dataset
        ann = 'openvocab/annotations/instances_val.json'
        ecfg.test_dataloader.dataset.update(
            ann_file=ann, data_prefix=dict(img='openvocab/val/'),
            metainfo=dict(classes=list(world_settings(world)[1])))
        ecfg.test_evaluator.ann_file = osp.join(world, ann)
    return ecfg


def run_key(scale, strategy, seed):
    return f'{scale}/{strategy}/seed{seed}'


def train_config(args, scale, strategy, seed):
    """The training config of one run: the strategy on the world with the
    preset's query counts and the scale's datasets."""
    from mmengine.config import Config
    cfg = on_world(Config.fromfile(STRATEGY_CFG[strategy]), args.world)
    queries = PRESETS[args.preset]['queries']
    if queries:
        cfg.model.num_learnable_queries, cfg.model.num_conditional_queries = \
            queries[query_mode(strategy)]
    cfg.train_dataloader.dataset.datasets = scale_datasets(cfg, scale)
    # the mixed datasets' metainfo differs (as in the R50 Table 2 mixes)
    cfg.train_dataloader.dataset.ignore_keys = [
        'classes', 'thing_classes', 'stuff_classes', 'palette', 'label_map',
        'reduce_zero_label'
    ]
    cfg.randomness = dict(seed=seed)
    return cfg


def one_run(args, scale, strategy, seed):
    """Train one configuration for the wall-time budget and evaluate the
    Table 2 columns (and, for mixed, the attribution); returns the row
    stored in --store."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo  # the budgeted training loop and the evaluation configs
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from fair_comparison import commit
    ran_on = commit()  # the code the run trains with, not a later HEAD
    cfg = train_config(args, scale, strategy, seed)
    wd = osp.join(args.work_dir, scale, strategy, f'seed{seed}')
    _, ckpt, iters, took = demo.train(cfg, wd, args.minutes, args.max_iters,
                                      save_at=args.eval_at)
    row = dict(iters=iters, seconds=took, minutes=args.minutes,
               commit=ran_on, date=datetime.date.today().isoformat(),
               **evaluate_point(cfg.model, strategy, ckpt, wd, args.world,
                                curve=bool(args.eval_at)))
    if args.eval_at:
        from mqformer.engine import TimeBudgetHook
        row['curve'] = {}
        for m in sorted(args.eval_at):
            point = osp.join(wd, TimeBudgetHook.mark_name(m))
            if not osp.isfile(point):  # at or past the budget: the final
                continue
            meta = torch_load_meta(point)
            row['curve'][f'{m:g}'] = dict(
                iters=meta['time_budget']['iters'], checkpoint=point,
                **evaluate_point(cfg.model, strategy, point,
                                 osp.join(wd, f'at_{m:g}min'), args.world,
                                 curve=True))
        row['curve'][f'{args.minutes:g}'] = dict(
            iters=iters, checkpoint=ckpt,
            **{k: v for k, v in row.items() if k in CURVE_KEYS})
    return row


# the last decoder layer's matching on the test images (mixed runs)
MATCHING = ('things matched to conditional %', 'stuff matched to learnable %')
CURVE_KEYS = [h for h, *_ in COLUMNS] + list(ATTRIBUTION) + [
    'thing proposal recall %', 'stuff proposal recall %'] + list(MATCHING)


def torch_load_meta(path):
    """A checkpoint's ``meta`` (weights-only load, mmengine's types
    allowed)."""
    from mqformer.compat import checkpoint_io, load_from_local_weights_only
    with checkpoint_io():
        return load_from_local_weights_only(path, 'cpu')['meta']


def evaluate_point(model, strategy, ckpt, wd, world, curve=False):
    """Table 2's columns of one checkpoint; for mixed the attribution; with
    ``curve`` the conditional queries' proposal recall too (strategies
    that have them)."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    out = {}
    for header, task, key, mult in COLUMNS:
        ecfg = eval_cfg(task, model, world)
        ecfg.work_dir = osp.join(wd, f'eval_{task}')
        out[header] = float(demo.score_checkpoint(ecfg, ckpt)[key]) * mult
    if query_mode(strategy) == 'mixed':
        out.update(attribution(model, ckpt, wd, world))
    if curve and strategy != 'learnable':
        from mqformer.evaluation.proposal_recall import \
            checkpoint_proposal_recall
        recall = checkpoint_proposal_recall(
            eval_cfg('panoptic', model, world), ckpt)
        out.update({f'{kind} proposal recall %': recall[f'{kind} recall %']
                    for kind in ('thing', 'stuff')})
    if curve and query_mode(strategy) == 'mixed':
        from mqformer.evaluation.matching_share import \
            checkpoint_matching_share
        share = checkpoint_matching_share(
            eval_cfg('panoptic', model, world), ckpt)
        out.update({k: share[k] for k in MATCHING})
    return out


def attribution(model, ckpt, wd, world):
    """Section 4.1's split of a mixed run: the share of the found thing
    segments its conditional queries made, and of the found stuff segments
    its learnable ones made (%); counter-case pictures in wd/attribution."""
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from query_attribution import attribute
    _, split = attribute(eval_cfg('panoptic', model, world), ckpt,
                         osp.join(wd, 'attribution'), max_pictures=6)
    return {ATTRIBUTION[0]: split['thing']['conditional'],
            ATTRIBUTION[1]: split['stuff']['learnable']}


def mean_std(vals):
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f'{statistics.mean(vals):.1f} +- {sd:.1f}'


def table(results, scales, strategies):
    """Table 2's layout: a row per scale x strategy, mean +- std over the
    finished seeds (n given); then the mixed runs' attribution split."""
    heads = [h for h, *_ in COLUMNS]
    lines = ['| data-task scale | queries | ' + ' | '.join(heads) +
             ' | seeds | iters |', '|---' * (len(COLUMNS) + 4) + '|']
    split = ['', '| data-task scale | mixed model | ' +
             ' | '.join(ATTRIBUTION) + ' | seeds |', '|---|---|---|---|---|']
    for scale in scales:
        for strategy in strategies:
            rows = [v for k, v in results.items()
                    if k.startswith(f'{scale}/{strategy}/')]
            if not rows:
                continue
            cells = [mean_std([r[h] for r in rows]) for h in heads + ['iters']]
            lines.append(f'| {scale} | {strategy} | ' +
                         ' | '.join(cells[:-1]) + f' | {len(rows)} | '
                         f'{cells[-1]} |')
            rows = [r for r in rows if ATTRIBUTION[0] in r]
            if rows:
                split.append(f'| {scale} | {strategy} | ' + ' | '.join(
                    mean_std([r[h] for r in rows]) for h in ATTRIBUTION) +
                             f' | {len(rows)} |')
    return '\n'.join(lines + (split if len(split) > 3 else []) +
                     curve_table(results, scales, strategies))


def curve_table(results, scales, strategies):
    """The learning curve: every column at each evaluated minute of the
    runs that have one, mean +- std over seeds."""
    heads = [h for h, *_ in COLUMNS] + ['thing proposal recall %'] + \
        list(ATTRIBUTION) + list(MATCHING)
    lines = ['', '| data-task scale | queries | minutes | iters | ' +
             ' | '.join(heads) + ' | seeds |',
             '|---' * (len(heads) + 5) + '|']
    for scale in scales:
        for strategy in strategies:
            rows = [v['curve'] for k, v in results.items()
                    if k.startswith(f'{scale}/{strategy}/') and 'curve' in v]
            points = sorted({m for r in rows for m in r}, key=float)
            for m in points:
                at = [r[m] for r in rows if m in r]
                cells = [mean_std([p[h] for p in at]) if all(
                    p.get(h) is not None for p in at) else '-'
                         for h in ['iters'] + heads]
                lines.append(f'| {scale} | {strategy} | {m} | ' +
                             ' | '.join(cells) + f' | {len(at)} |')
    return lines if len(lines) > 3 else []


def plot_curve(results, scales, strategies, path):
    """The learning curve as a picture: one panel per Table 2 column, a line
    per scale x strategy (mean over seeds, the seeds' min-max shaded), minutes
    on x. Returns the number of lines drawn (nothing is written for 0)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4 * len(COLUMNS), 3.4))
    drawn = 0
    for scale in scales:
        for strategy in strategies:
            rows = [v['curve'] for k, v in results.items()
                    if k.startswith(f'{scale}/{strategy}/') and 'curve' in v]
            points = sorted({float(m) for r in rows for m in r})
            if not points:
                continue
            drawn += 1
            for ax, (head, *_) in zip(axes, COLUMNS):
                vals = [[r[f'{m:g}'][head] for r in rows if f'{m:g}' in r]
                        for m in points]
                line, = ax.plot(points, [statistics.mean(v) for v in vals],
                                marker='o', label=f'{scale} {strategy}')
                ax.fill_between(points, [min(v) for v in vals],
                                [max(v) for v in vals], alpha=0.2,
                                color=line.get_color())
    if drawn:
        for ax, (head, *_) in zip(axes, COLUMNS):
            ax.set_title(head)
            ax.set_xlabel('training minutes')
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def save(results, store):
    with open(store + '.tmp', 'w') as f:  # a killed run leaves the old
        json.dump(results, f, indent=1)
    os.replace(store + '.tmp', store)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    demo.make_world(args.train_images, args.val_images, args.world,
                    PRESETS[args.preset]['held_out'], preset=args.preset)
    import mqformer  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    os.makedirs(args.work_dir, exist_ok=True)
    store = args.store
    os.makedirs(osp.dirname(osp.abspath(store)), exist_ok=True)
    results = json.load(open(store)) if osp.isfile(store) else {}
    # seed by seed, so a partial table already has every cell
    todo = [(sc, st, sd) for sd in args.seeds for sc in args.scales
            for st in args.strategies if run_key(sc, st, sd) not in results]
    print(f'[ablation] {len(todo)} runs to do, '
          f'{len(results)} done in {store}')
    for k, (scale, strategy, seed) in enumerate(todo):
        print(f'[ablation] run {k + 1}/{len(todo)}: {scale} {strategy} '
              f'seed {seed}, {args.minutes} min')
        results[run_key(scale, strategy, seed)] = one_run(
            args, scale, strategy, seed)
        save(results, store)
    for key, row in results.items():  # runs stored before attribution
        scale, strategy, seed = key.split('/')
        wd = osp.join(args.work_dir, scale, strategy, seed)
        if (query_mode(strategy) == 'mixed' and ATTRIBUTION[0] not in row
                and osp.isfile(osp.join(wd, 'final.pth'))):
            from mmengine.config import Config
            model = Config.fromfile(STRATEGY_CFG[strategy]).model
            row.update(attribution(model, osp.join(wd, 'final.pth'), wd,
                                   args.world))
            save(results, store)
    text = table(results, args.scales, args.strategies)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(text + '\n')
    print('\n' + text)
    picture = osp.join(args.work_dir, 'curve.png')
    if plot_curve(results, args.scales, args.strategies, picture):
        print(f'[ablation] learning curve: {picture}')
    return results


if __name__ == '__main__':
    main()

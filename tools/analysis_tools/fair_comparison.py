# MQ-Former against a fair Mask2Former, several seeds, on generated worlds.
#
# Both models are built at one size (ResNet-18 at a quarter width, 64-d, 2
# encoder + 3 decoder layers, the same query total), with the same attention
# paths, optimizer, clipping, batch, data, augmentation and wall-time budget
# (configs/baselines/mask2former_tiny_shapes-panoptic.py against
# configs/mqformer/mqformer_tiny_shapes-panoptic.py). Per run: train for
# --minutes (learning rate x0.1 at 85% of it), choose each model's panoptic
# thresholds on the world's calibration images (calibrate_thresholds.py),
# then score the test images (the world's val split) at the chosen values:
# PQ, PQ th, PQ st, mask AP, box AP (both models' boxes from their masks),
# and where the test segments are lost (lost_objects.py: found / lost in
# merge / low score / wrong class / no mask), by one rule for both models.
#
#   python tools/analysis_tools/fair_comparison.py [--worlds shapes crowded] \
#       [--seeds 0 1 2] [--minutes 10] [--models mqformer mask2former] \
#       [--store benchmarks/results/fair_comparison.json]
#
# Worlds (make_shapes_world.py presets): shapes (the demo's) and crowded
# (COCO-like: 10-40 things of 60 names and 10 stuff names per image; both
# models get 100 queries there: MQ-Former 25 learnable + 75 conditional).
# Resumable: a run stored in --store is never repeated, so the runs can be
# spread over several sittings; each row records the commit and date it ran
# on. The table gives mean +- std and min-max over the seeds, and per score
# whether MQ-Former wins (its range above Mask2Former's), loses (below) or
# ties (ranges overlap). --rescore scores the kept checkpoints of the stored
# runs again with the current code (a post-processing change needs no
# retraining); the old rows stay as name@COMMIT ("before COMMIT") and the
# table prints the change per seed. --retrain does the same for a training
# change: the stored runs trained at another commit are trained again, same
# seeds. Run from the repository root, one at a time (CPU-bound).
import argparse
import copy
import datetime
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHAPES_ROOT = 'data/shapes_world/'  # what the shapes configs read
WORLDS = dict(shapes='data/shapes_world', crowded='data/crowded_world')
MODELS_CFG = dict(
    mqformer=osp.join(REPO, 'configs', 'mqformer',
                      'mqformer_tiny_shapes-panoptic.py'),
    mqformer_multitask=osp.join(REPO, 'configs', 'mqformer',
                                'mqformer_tiny_shapes-multitask.py'),
    mqformer_dense=osp.join(REPO, 'configs', 'mqformer',
                            'mqformer_tiny_shapes-panoptic.py'),
    mqformer_pixels=osp.join(REPO, 'configs', 'mqformer',
                             'mqformer_tiny_shapes-panoptic.py'),
    mqformer_decoupled=osp.join(REPO, 'configs', 'mqformer',
                                'mqformer_tiny_shapes-panoptic.py'),
    mqformer_sampled_negatives=osp.join(REPO, 'configs', 'mqformer',
                                        'mqformer_tiny_shapes-panoptic.py'),
    mqformer_masked=osp.join(REPO, 'configs', 'mqformer',
                             'mqformer_tiny_shapes-panoptic_masked.py'),
    mqformer_rolematch_masked=osp.join(
        REPO, 'configs', 'mqformer',
        'mqformer_tiny_shapes-panoptic_rolematch-masked.py'),
    mqformer_learnable=osp.join(REPO, 'configs', 'mqformer',
                                'mqformer_tiny_shapes-panoptic_learnable.py'),
    mask2former=osp.join(REPO, 'configs', 'baselines',
                         'mask2former_tiny_shapes-panoptic.py'))
# rows that are a config with settings changed (--cfg-options style)
OPTIONS = dict(
    mqformer_dense={'model.bbox_head.mask_loss_sampling': 'dense'},
    mqformer_pixels={'model.bbox_head.mask_loss_sampling': 'pixels'},
    mqformer_decoupled={'model.bbox_head.decouple_stuff_boxes': True},
    # 8 absent class names sampled as negative texts per training image
    # (the default before every absent name became a negative)
    mqformer_sampled_negatives={'ClassNamesToTexts.num_negatives': 8})
NAMES = dict(mqformer='MQ-Former tiny, panoptic data',
             mqformer_multitask='MQ-Former tiny, multitask data',
             mqformer_dense='MQ-Former tiny, panoptic data, dense mask '
             'losses',
             mqformer_pixels='MQ-Former tiny, panoptic data, mask losses at '
             'uncertain pixels',
             mqformer_decoupled='MQ-Former tiny, panoptic data, stuff '
             'without boxes',
             mqformer_sampled_negatives='MQ-Former tiny, panoptic data, 8 '
             'sampled negative names',
             mqformer_masked='MQ-Former tiny, panoptic data, learnable '
             'queries with masked attention',
             mqformer_rolematch_masked='MQ-Former tiny, panoptic data, stuff '
             'matched to learnable queries with masked attention',
             mqformer_learnable='MQ-Former tiny, panoptic data, learnable '
             'queries only',
             mask2former='Mask2Former tiny (same size, kernels, recipe)')
# the crowded world's query budget (same total for every model): (learnable,
# conditional) per MQ-Former query mode, Mask2Former's total
CROWDED_QUERIES = dict(mixed=(25, 75), learnable=(100, 0),
                       conditional=(0, 100), mask2former=100)
# OPTIONS keys 'Transform.arg' set an argument of every such training
# pipeline step (wherever the dataset wrappers put it)
TRANSFORM_KEYS = ('ClassNamesToTexts', )
MIN_SEEDS = 3  # a verdict needs at least this many seeds per model
COLUMNS = [  # (header, metric key, scale)
    ('PQ', 'coco_panoptic/PQ', 1), ('PQ th', 'coco_panoptic/PQ_th', 1),
    ('PQ st', 'coco_panoptic/PQ_st', 1), ('mask AP', 'coco/segm_mAP', 100),
    ('box AP', 'coco/bbox_mAP', 100)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='MQ-Former vs a fair Mask2Former')
    p.add_argument('--worlds', nargs='+', default=list(WORLDS),
                   choices=list(WORLDS))
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--models', nargs='+', default=['mqformer', 'mask2former'],
                   choices=list(MODELS_CFG))
    p.add_argument('--minutes', type=float, default=10.0)
    p.add_argument('--max-iters', type=int, default=100000)
    p.add_argument('--lr-drop', type=float, default=0.85)
    p.add_argument('--train-images', type=int, default=200)
    p.add_argument('--val-images', type=int, default=200,
                   help='test images (the world\'s val split)')
    p.add_argument('--calib-images', type=int, default=100,
                   help='validation images the thresholds are chosen on')
    p.add_argument('--store', default='benchmarks/results/fair_comparison.json')
    p.add_argument('--work-dir', default='work_dirs/fair_comparison')
    p.add_argument('--rescore', action='store_true',
                   help='score the kept checkpoints of the stored runs '
                   '(--worlds, --models, --seeds) again with the current '
                   'code (post-processing changes); the old rows stay as '
                   'name@commit (as they were before that commit)')
    p.add_argument('--retrain', action='store_true',
                   help='train the stored runs (--worlds, --models, --seeds) '
                   'that were trained at another commit again with the '
                   'current code, same seeds (a training change); the old '
                   'rows stay as name@commit and their work dirs move to '
                   'name@commit/')
    p.add_argument('--table-only', action='store_true',
                   help='print the table of the stored runs and stop')
    return p.parse_args(argv)


def world_classes(root):
    """(things, stuff) names of a generated world, from its panoptic json."""
    cats = json.load(open(osp.join(root, 'annotations',
                                   'panoptic_val.json')))['categories']
    return ([c['name'] for c in cats if c['isthing']],
            [c['name'] for c in cats if not c['isthing']])


def on_world(cfg, root, things, stuff, shapes_things, shapes_stuff):
    """Point a shapes-world config at the world ``root``: paths under
    data/shapes_world/ and the class lists (things, stuff, both) are
    replaced in place, Mask2Former's class counts set. Returns cfg."""
    prefix = root.rstrip('/') + '/'
    lists = {tuple(shapes_things): things, tuple(shapes_stuff): stuff,
             tuple(shapes_things + shapes_stuff): things + stuff}

    def fix(v):
        if isinstance(v, str) and v.startswith(SHAPES_ROOT):
            return prefix + v[len(SHAPES_ROOT):]
        if isinstance(v, (list, tuple)):
            if all(isinstance(x, str) for x in v) and tuple(v) in lists:
                return list(lists[tuple(v)])
            return type(v)(fix(x) for x in v)
        if hasattr(v, 'items'):
            for k, x in list(v.items()):
                v[k] = fix(x)
        return v

    fix(cfg._cfg_dict if hasattr(cfg, '_cfg_dict') else cfg)
    model = cfg.model
    if 'panoptic_head' in model:  # Mask2Former's fixed class count
        nt, ns = len(things), len(stuff)
        for head in (model.panoptic_head, model.panoptic_fusion_head):
            head.num_things_classes, head.num_stuff_classes = nt, ns
        model.panoptic_head.loss_cls.class_weight = [1.0] * (nt + ns) + [0.1]
    return cfg


def model_config(name, world):
    """The training config of ``name`` on ``world`` (a WORLDS key)."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    from mmengine.config import Config
    cfg = Config.fromfile(MODELS_CFG[name])
    options = dict(OPTIONS.get(name, {}))
    for key in [k for k in options if k.split('.')[0] in TRANSFORM_KEYS]:
        transform, arg = key.split('.')
        if not set_transform_arg(cfg.train_dataloader, transform, arg,
                                 options.pop(key)):
            raise KeyError(f'{name}: option {key}: no {transform} step in '
                           f'the training pipelines of {MODELS_CFG[name]}')
    cfg.merge_from_dict(options)
    if name != 'mask2former':
        cfg = demo.text_encoder(cfg, 'minilm')
    retarget(cfg, world)
    if world == 'crowded':
        if name == 'mask2former':
            cfg.model.panoptic_head.num_queries = \
                CROWDED_QUERIES['mask2former']
        else:
            cfg.model.num_learnable_queries, \
                cfg.model.num_conditional_queries = \
                CROWDED_QUERIES[cfg.model.get('query_mode', 'mixed')]
    return cfg


def set_transform_arg(node, transform, arg, value):
    """Set ``arg`` of every ``transform`` step under ``node`` (a
    dataloader config: datasets, wrappers, pipelines). Returns the count."""
    n = 0
    if hasattr(node, 'items'):
        if node.get('type') == transform:
            node[arg] = value
            n += 1
        for v in node.values():
            n += set_transform_arg(v, transform, arg, value)
    elif isinstance(node, (list, tuple)):
        for v in node:
            n += set_transform_arg(v, transform, arg, value)
    return n


def retarget(cfg, world):
    if world == 'shapes':
        return cfg
    from mmengine.config import Config
    base = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets',
                                    'shapes_world_multitask.py'))
    things, stuff = world_classes(WORLDS[world])
    return on_world(cfg, WORLDS[world], things, stuff,
                    list(base.shapes_things), list(base.shapes_stuff))


def commit():
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def score(metrics):
    out = {}
    for header, key, mult in COLUMNS:
        v = metrics.get(key)
        out[header] = None if v is None or v < 0 else float(v) * mult
    return out


def one_run(args, world, name, seed):
    """Train ``name`` on ``world`` with ``seed``, choose its thresholds on
    the calibration images, score the test images; the stored row."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    demo.LR_DROP[0] = args.lr_drop or None
    cfg = model_config(name, world)
    cfg.randomness = dict(seed=seed)
    wd = osp.join(args.work_dir, world, name, f'seed{seed}')
    ran_on = commit()  # the code it trains with, not a later HEAD
    _, ckpt, iters, took = demo.train(cfg, wd, args.minutes, args.max_iters)
    return dict(score_checkpoint(world, name, cfg, ckpt, wd), commit=ran_on,
                iters=iters, seconds=round(took), minutes=args.minutes)


def score_checkpoint(world, name, cfg, ckpt, wd):
    """Thresholds chosen on the calibration images, then the test scores,
    the stage counts, commit and date of the checkpoint ``ckpt`` of
    ``name`` (training config ``cfg``; default :func:`model_config`)."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    from mqformer.evaluation.threshold_calibration import calibrate
    cfg = cfg or model_config(name, world)
    cal = calibrate(panoptic_config(name, world, cfg), ckpt,
                    work_dir=osp.join(wd, 'calib'))
    if name == 'mask2former':
        ecfg = copy.deepcopy(cfg)
        ecfg.pop('randomness', None)
        ecfg.model.test_cfg.update(cal['chosen'])  # its fusion head's
        ecfg.work_dir = osp.join(wd, 'eval_panoptic')
        metrics = demo.score_checkpoint(ecfg, ckpt)
    else:
        metrics = {}
        for task in ('panoptic', 'instance'):
            ecfg = retarget(demo.eval_config(task, cfg.model), world)
            ecfg = demo.text_encoder(ecfg, 'minilm', training=False)
            ecfg.model.test_cfg.update(cal['chosen'])
            ecfg.work_dir = osp.join(wd, f'eval_{task}')
            metrics.update(demo.score_checkpoint(ecfg, ckpt))
    return dict(score(metrics), thresholds=cal['chosen'],
                thresholds_at_edge=cal['at_edge'],
                calib_pq=round(cal['best'], 2),
                calib_images=cal['num_images'], commit=commit(),
                date=datetime.date.today().isoformat(),
                lost=lost(name, world, cfg, ckpt, cal['chosen'], wd))


def rescore(results, key, work_dir, now):
    """Score the kept checkpoint of the stored run ``key`` with the current
    code, commit ``now`` (a post-processing change needs no retraining:
    same weights, same seeds). The old row stays as
    ``world/name@now/seedN``: the row as it was before ``now``."""
    world, name, seed = key.split('/')
    old = results[key]
    wd = osp.join(work_dir, world, name, seed)
    ckpt = osp.join(wd, 'final.pth')
    if not osp.isfile(ckpt):
        raise FileNotFoundError(f'{key}: no checkpoint {ckpt} to rescore')
    results.setdefault(f'{world}/{name}@{now}/{seed}', old)
    new = score_checkpoint(world, name, None, ckpt, wd)
    return dict(new, iters=old['iters'], seconds=old['seconds'],
                minutes=old['minutes'],
                trained_commit=old.get('trained_commit', old['commit']))


def trained_at(row):
    return row.get('trained_commit', row['commit'])


def retire(results, args, now):
    """Before ``--retrain``: each stored run of the selected worlds, models
    and seeds trained at a commit other than ``now`` becomes
    ``world/name@now/seedN`` (its work dir moves along), so the run is done
    again and the table shows the change per seed."""
    for key in [f'{w}/{m}/seed{s}' for s in args.seeds
                for w in args.worlds for m in args.models]:
        if key not in results or trained_at(results[key]) == now:
            continue
        world, name, seed = key.split('/')
        old = f'{world}/{name}@{now}/{seed}'
        results.setdefault(old, results[key])
        src = osp.join(args.work_dir, world, name, seed)
        dst = osp.join(args.work_dir, world, f'{name}@{now}', seed)
        if osp.isdir(src) and not osp.exists(dst):
            os.makedirs(osp.dirname(dst), exist_ok=True)
            os.replace(src, dst)
        del results[key]
        print(f'[fair] {key} kept as {old}; training it again at {now}')
    save(results, args.store)


def panoptic_config(name, world, cfg=None):
    """The config that scores ``name``'s panoptic output on ``world``: its
    calibration images (val_dataloader) and test images (test_dataloader).
    ``cfg``: the training config (default: :func:`model_config`)."""
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import demo
    cfg = copy.deepcopy(cfg or model_config(name, world))
    if name == 'mask2former':
        cfg.pop('randomness', None)
        return cfg
    pan = retarget(demo.eval_config('panoptic', cfg.model), world)
    return demo.text_encoder(pan, 'minilm', training=False)


def lost(name, world, cfg, ckpt, thresholds, wd):
    """Where the test images' segments are lost (lost_objects.py) at the
    chosen thresholds: {'thing': {stage: n}, 'stuff': ..., 'mask_iou'}."""
    from mqformer.evaluation.lost_objects import count_lost
    return count_lost(panoptic_config(name, world, cfg), ckpt, thresholds,
                      work_dir=osp.join(wd, 'lost'))


def spread(vals):
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return statistics.mean(vals), sd, min(vals), max(vals)


def verdict(ours, peer):
    """win / lose where the seed ranges do not overlap, else tie."""
    if min(ours) > max(peer):
        return 'win'
    if max(ours) < min(peer):
        return 'lose'
    return 'tie'


def variants(results, world, models):
    """(label, key prefix) of each row group of ``world``: every model in
    ``models``, then its rows as they were before a rescore at a commit
    (``name@commit``)."""
    out = [(NAMES[name], f'{world}/{name}/') for name in models]
    for name in models:
        old = sorted({k.split('/')[1] for k in results
                      if k.startswith(f'{world}/{name}@')})
        out += [(f'{NAMES[name]}, before {v.split("@")[1]}',
                 f'{world}/{v}/') for v in old]
    return out


def table(results, world, models):
    heads = [h for h, *_ in COLUMNS]
    lines = [f'World: {world}', '',
             '| model | ' + ' | '.join(heads) + ' | seeds | iters | '
             'thresholds (object_mask_thr / iou_thr) |',
             '|---' * (len(heads) + 4) + '|']
    runs = {}
    for label, prefix in variants(results, world, models):
        rows = [v for k, v in sorted(results.items()) if k.startswith(prefix)]
        if not rows:
            continue
        runs[prefix.split('/')[1]] = rows
        cells = []
        for h in heads:
            vals = [r[h] for r in rows if r[h] is not None]
            if not vals:
                cells.append('-')
                continue
            m, sd, lo, hi = spread(vals)
            cells.append(f'{m:.1f} +- {sd:.1f} [{lo:.1f}-{hi:.1f}]')
        it = spread([r['iters'] for r in rows])
        thr = ', '.join(thresholds(r['thresholds'], '/') for r in rows)
        lines.append(f'| {label} | ' + ' | '.join(cells) +
                     f' | {len(rows)} | {it[0]:.0f} [{it[2]}-{it[3]}] | '
                     f'{thr} |')
    if 'mqformer' in runs and 'mask2former' in runs:
        v = []
        for h in heads:
            ours = [r[h] for r in runs['mqformer'] if r[h] is not None]
            peer = [r[h] for r in runs['mask2former'] if r[h] is not None]
            if ours and peer:
                v.append(f'{h} {verdict(ours, peer)}')
        n = min(len(runs['mqformer']), len(runs['mask2former']))
        if n < MIN_SEEDS:
            v = [f'no verdict below {MIN_SEEDS} seeds']
        lines += ['', f'MQ-Former (panoptic data) against Mask2Former, '
                  f'{n} seed(s): ' + ', '.join(v) +
                  ' (win/lose only where the seed ranges do not overlap)']
    for old in [k for k in runs if '@' in k]:
        name = old.split('@')[0]
        before = {k.rsplit('/', 1)[1]: v for k, v in results.items()
                  if k.startswith(f'{world}/{old}/')}
        after = {k.rsplit('/', 1)[1]: v for k, v in results.items()
                 if k.startswith(f'{world}/{name}/')}
        seeds = sorted(set(before) & set(after))
        if not seeds:
            continue
        deltas = []
        for h in heads:
            d = [after[s][h] - before[s][h] for s in seeds
                 if after[s][h] is not None and before[s][h] is not None]
            if d:
                deltas.append(f'{h} {statistics.mean(d):+.1f} '
                              f'[{min(d):+.1f} to {max(d):+.1f}]')
        same = all(trained_at(before[s]) == trained_at(after[s])
                   for s in seeds)
        how = 'same checkpoints' if same else 'trained again, same seeds'
        lines += ['', f'{NAMES[name]} now against before '
                  f'{old.split("@")[1]}, {how}, {len(seeds)} '
                  'seed(s), change per seed: ' + ', '.join(deltas)]
    return '\n'.join(lines)


def seed_rows(results, world, models):
    """One line per stored run of ``world``: scores, iterations, thresholds,
    commit and date."""
    heads = [h for h, *_ in COLUMNS]
    lines = ['| model | seed | ' + ' | '.join(heads) + ' | iters | '
             'thresholds | calib PQ | commit | date |',
             '|---' * (len(heads) + 7) + '|']
    for label, prefix in variants(results, world, models):
        for key, r in sorted(results.items()):
            if not key.startswith(prefix):
                continue
            cells = ['-' if r[h] is None else f'{r[h]:.1f}' for h in heads]
            lines.append(
                f'| {label} | {key.rsplit("seed", 1)[1]} | ' +
                ' | '.join(cells) + f' | {r["iters"]} | '
                f'{thresholds(r["thresholds"], " / ")} | '
                f'{r.get("calib_pq", "-")} | {r["commit"]} | {r["date"]} |')
    return '\n'.join(lines)


def thresholds(chosen, sep):
    """The chosen object_mask_thr and iou_thr, joined by ``sep``."""
    return (f'{chosen.get("object_mask_thr", "-")}{sep}'
            f'{chosen.get("iou_thr", "-")}')


def lost_table(results, world, models):
    """The stages of lost_objects.py summed over each model's seeds."""
    from mqformer.evaluation.lost_objects import STAGES, stages_table
    rows = {}
    for label, prefix in variants(results, world, models):
        runs = [v for k, v in sorted(results.items())
                if k.startswith(prefix) and 'lost' in v]
        if not runs:
            continue
        rows[f'{label} ({len(runs)} seeds)'] = dict(
            thing={s: sum(r['lost']['thing'][s] for r in runs)
                   for s in STAGES},
            stuff={s: sum(r['lost']['stuff'][s] for r in runs)
                   for s in STAGES},
            mask_iou={k: statistics.mean(r['lost']['mask_iou'][k]
                                         for r in runs)
                      for k in ('thing', 'stuff')})
    if not rows:
        return ''
    return ('Where the test segments are lost (lost_objects.py, at the '
            'chosen thresholds; shares of all seeds\' segments):\n\n' +
            stages_table(rows) + '\n\n' + merge_table(results, world,
                                                       models))


def merge_table(results, world, models):
    """Where the pixels of the segments lost in the merge went, summed
    over each model's seeds (shares of those pixels)."""
    from mqformer.evaluation.lost_objects import TAKERS
    lines = ['| model | lost in merge | pixels | ' + ' | '.join(TAKERS) +
             ' |', '|---' * (len(TAKERS) + 3) + '|']
    for label, prefix in variants(results, world, models):
        runs = [v for k, v in sorted(results.items())
                if k.startswith(prefix) and 'merge_pixels' in
                v.get('lost', {})]
        for kind in ('thing', 'stuff') if runs else ():
            px = {t: sum(r['lost']['merge_pixels'][kind][t] for r in runs)
                  for t in TAKERS}
            n = sum(px.values())
            lines.append(f'| {label} ({len(runs)} seeds) | {kind} | {n} | ' +
                         ' | '.join(f'{100 * px[t] / max(n, 1):.1f}%'
                                    for t in TAKERS) + ' |')
    return ('Where the pixels of the segments lost in the merge went:\n\n' +
            '\n'.join(lines) + owners_table(results, world, models)
            ) if len(lines) > 2 else ''


def owners_table(results, world, models):
    """Who took the stuff segments lost to another stuff name, summed over
    each model's seeds (lost_objects.py's ``merge_owners``)."""
    lines = ['| model | stuff lost to other stuff | duplicate | absent name '
             '| owner score | right score | stuff queries per image |',
             '|---' * 7 + '|']
    for label, prefix in variants(results, world, models):
        runs = [v for k, v in sorted(results.items())
                if k.startswith(prefix) and 'merge_owners' in
                v.get('lost', {})]
        if not runs:
            continue
        o = {k: sum(r['lost']['merge_owners'][k] for r in runs)
             for k in runs[0]['lost']['merge_owners']}
        n = max(o['segments'], 1)
        lines.append(f'| {label} ({len(runs)} seeds) | {o["segments"]} | '
                     f'{100 * o["duplicate"] / n:.0f}% | '
                     f'{100 * o["absent name"] / n:.0f}% | '
                     f'{o["owner score"] / n:.2f} | '
                     f'{o["right score"] / n:.2f} | '
                     f'{o["stuff_queries"] / max(o["images"], 1):.1f} |')
    return ('\n\nThe owners of the stuff lost to another stuff name (the '
            'taking name\'s query with the most of the segment):\n\n' +
            '\n'.join(lines)) if len(lines) > 2 else ''


def save(results, store):
    os.makedirs(osp.dirname(osp.abspath(store)), exist_ok=True)
    with open(store + '.tmp', 'w') as f:  # a killed run leaves the old
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(store + '.tmp', store)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    results = json.load(open(args.store)) if osp.isfile(args.store) else {}
    if not args.table_only:
        sys.path.insert(0, osp.join(REPO, 'tools'))
        import demo
        for world in args.worlds:
            demo.make_world(args.train_images, args.val_images,
                            WORLDS[world], calib_images=args.calib_images,
                            preset=world)
        import mqformer  # noqa: F401
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        if args.retrain:
            retire(results, args, commit())
        # seed by seed, so a partial table already compares both models
        todo = [(w, m, s) for s in args.seeds for w in args.worlds
                for m in args.models if f'{w}/{m}/seed{s}' not in results]
        print(f'[fair] {len(todo)} runs to do, {len(results)} stored in '
              f'{args.store}')
        for k, (world, name, seed) in enumerate(todo):
            print(f'[fair] run {k + 1}/{len(todo)}: {world} {name} seed '
                  f'{seed}, {args.minutes} min')
            results[f'{world}/{name}/seed{seed}'] = one_run(
                args, world, name, seed)
            save(results, args.store)
        if args.rescore:
            now = commit()
            for key in [f'{w}/{m}/seed{s}' for s in args.seeds
                        for w in args.worlds for m in args.models]:
                if key in results and results[key]['commit'] != now:
                    print(f'[fair] rescoring {key} at {now}')
                    results[key] = rescore(results, key, args.work_dir, now)
                    save(results, args.store)
        # runs stored before the stage counts (or their merge owners)
        # existed, checkpoints kept
        for key, row in sorted(results.items()):
            world, name, seed = key.split('/')
            ckpt = osp.join(args.work_dir, world, name, seed, 'final.pth')
            if (world in args.worlds and name in args.models
                    and 'merge_owners' not in row.get('lost', {})
                    and osp.isfile(ckpt)):
                print(f'[fair] stage counts of {key}')
                row['lost'] = lost(name, world, None, ckpt,
                                   row['thresholds'],
                                   osp.dirname(ckpt))
                save(results, args.store)
    text = '\n\n'.join(table(results, w, args.models) + '\n\n' +
                         seed_rows(results, w, args.models) + '\n\n' +
                         lost_table(results, w, args.models)
                         for w in args.worlds)
    print('\n' + text)
    return results


if __name__ == '__main__':
    main()

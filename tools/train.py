# Train an MQ-Former (or any mmdet model) with mmdet's CLI.
import argparse
import os
import os.path as osp

import torch

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mqformer  # noqa: F401  (registers components)
from mqformer.compat import checkpoint_io, cpu_distributed
from mqformer.engine import setup_cpu_malloc


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='automatic mixed precision: fp16 with dynamic loss scaling on '
        'GPUs, bf16 autocast on the CPU')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or without a path from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config, key=value pairs (mmengine '
        'DictAction syntax)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if torch.cuda.is_available():  # fp16 autocast, dynamic loss scale
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        else:  # bf16 autocast on the CPU (AmpOptimWrapper needs CUDA)
            cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.enable and '
                               'auto_scale_lr.base_batch_size in the config')
    # random states travel with every checkpoint: --resume continues bit for
    # bit where the run stopped (or was killed)
    hooks = list(cfg.get('custom_hooks', []))
    if not any(h.get('type') == 'RNGStateHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='RNGStateHook')]
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def check_work_dir(path: str) -> None:
    """Fail before building anything if checkpoints cannot be written."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = osp.join(path, f'.write_test_{os.getpid()}')
        open(probe, 'w').close()
        os.remove(probe)
    except OSError as e:
        raise SystemExit(f'work dir {path} is not writable: {e.strerror} '
                         f'({e.filename}); pass --work-dir DIR') from None


def main():
    args = parse_args()
    cfg = build_cfg(args)
    check_work_dir(cfg.work_dir)
    setup_cpu_malloc(cfg)  # CPU training keeps freed memory for reuse
    with cpu_distributed(cfg):  # CPU-only multi-process runs (gloo)
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
    with checkpoint_io():  # weights-only checkpoint loading and saving
        runner.train()


if __name__ == '__main__':
    main()

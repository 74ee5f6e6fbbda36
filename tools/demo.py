# The main job on the embedded default: generate the shapes world, train a tiny
# MQ-Former on the CPU through the normal runner, evaluate it and draw results.
#   python tools/demo.py --work-dir work_dirs/demo [--iters 300]
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'mqformer',
                  'mqformer_tiny_shapes-instance.py')


def parse_args():
    p = argparse.ArgumentParser(description='MQ-Former CPU demo')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/shapes_world')
    p.add_argument('--config', default=CONFIG)
    p.add_argument('--iters', type=int, default=300, help='training iterations')
    p.add_argument('--train-images', type=int, default=200)
    p.add_argument('--val-images', type=int, default=40)
    p.add_argument('--text-encoder', choices=['minilm', 'tiny'],
                   default='minilm',
                   help='minilm: the pretrained all-MiniLM-L6-v2 from PyPI '
                   '(offline); tiny: a small randomly initialised BERT')
    p.add_argument('--num-vis', type=int, default=6,
                   help='validation images to draw')
    return p.parse_args()


def main():
    args = parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    t0 = time.time()
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'dataset_converters', 'make_shapes_world.py'),
        args.data_root, '--train', str(args.train_images), '--val',
        str(args.val_images)
    ], check=True)

    import mqformer  # noqa: F401
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(args.config)
    if args.text_encoder == 'tiny':
        cfg.model.text_encoder = cfg.tiny_text_encoder
    root = args.data_root.rstrip('/') + '/'
    for dl in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[dl].dataset.data_root = root
    cfg.val_evaluator.ann_file = root + 'annotations/instances_val.json'
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters
    cfg.default_hooks.checkpoint.interval = args.iters
    cfg.work_dir = args.work_dir
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val_loop.run()
    draw(runner, osp.join(args.work_dir, 'vis'), args.num_vis)
    took = time.time() - t0
    print('\n| metric | value |\n| --- | --- |')
    for k, v in metrics.items():
        if isinstance(v, (int, float)):
            print(f'| {k} | {v:.4f} |')
    print(f'| wall time (s) | {took:.0f} |')
    with open(osp.join(args.work_dir, 'demo_metrics.json'), 'w') as f:
        json.dump(dict(metrics={k: v for k, v in metrics.items()
                                if isinstance(v, (int, float))},
                       seconds=took), f, indent=1)
    print(f'pictures in {osp.join(args.work_dir, "vis")}')


def draw(runner, out_dir, num):
    """Draw predictions on the first ``num`` validation images."""
    import mmcv
    import torch
    from mmdet.visualization import DetLocalVisualizer
    os.makedirs(out_dir, exist_ok=True)
    vis = DetLocalVisualizer(name='mqformer_demo')
    model = runner.model.eval()
    dataset = runner.val_dataloader.dataset
    for i in range(min(num, len(dataset))):
        data = runner.val_dataloader.collate_fn([dataset[i]])
        with torch.no_grad():
            sample = model.test_step(data)[0]
        img = mmcv.imread(sample.img_path, channel_order='rgb')
        vis.dataset_meta = dict(classes=list(sample.texts))
        pred = sample.pred_instances
        sample.pred_instances = pred[pred.scores > 0.3]
        vis.add_datasample(
            'pred', img, sample, draw_gt=True, show=False,
            out_file=osp.join(out_dir, osp.basename(sample.img_path)))


if __name__ == '__main__':
    main()

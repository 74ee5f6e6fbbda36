# Choose a model's panoptic post-processing thresholds on validation images,
# never on the test images: the network runs once over the config's
# val_dataloader (e.g. the shapes world's calibration split), then the
# post-processing alone is repeated over the grid (object_mask_thr x iou_thr;
# both MQ-Former's MQFusionHead and mmdet's Mask2Former/MaskFormer fusion head
# gate segments by them) and scored by the val_evaluator's
# CocoPanopticMetric. Validation images that are test images
# (test_dataloader) are refused.
#
#   python tools/analysis_tools/calibrate_thresholds.py CONFIG CKPT \
#       [--grid object_mask_thr=0.1,0.3,0.5 iou_thr=0.5,0.8] [--out FILE] \
#       [--cfg-options KEY=VALUE ...]
#
# Prints the table and the chosen values, and writes them as json (--out);
# apply them with --cfg-options model.test_cfg.object_mask_thr=... at test.
import argparse
import json
import os
import os.path as osp

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='choose panoptic thresholds on validation images')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--grid', nargs='+', default=None, metavar='KEY=V1,V2',
                   help='test_cfg keys and the values to try (default: '
                   'object_mask_thr 0.1..0.9, iou_thr 0.5,0.65,0.8)')
    p.add_argument('--out', default=None, help='write the result as json')
    p.add_argument('--work-dir', default='work_dirs/calibration')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   default={})
    return p.parse_args(argv)


def parse_grid(items):
    grid = {}
    for item in items or ():
        key, sep, values = item.partition('=')
        try:
            grid[key] = tuple(float(v) for v in values.split(','))
        except ValueError:
            raise SystemExit(f'--grid {item!r}: expected KEY=V1,V2,... with '
                             'numbers') from None
        if not sep or not key:
            raise SystemExit(f'--grid {item!r}: expected KEY=V1,V2,...')
    return grid or None


def table(result):
    keys = list(result['table'][0]['setting'])
    cols = ('coco_panoptic/PQ', 'coco_panoptic/PQ_th', 'coco_panoptic/PQ_st')
    lines = ['| ' + ' | '.join(keys + [c.split('/')[1] for c in cols]) +
             ' |', '|---' * (len(keys) + len(cols)) + '|']
    for row in result['table']:
        lines.append('| ' + ' | '.join(
            [f'{row["setting"][k]:g}' for k in keys] +
            [f'{row["metrics"].get(c, float("nan")):.1f}' for c in cols]) +
            ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import mqformer  # noqa: F401
    from mmdet.utils import register_all_modules

    from mqformer.evaluation.threshold_calibration import calibrate
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    result = calibrate(cfg, args.checkpoint, parse_grid(args.grid),
                       work_dir=args.work_dir)
    print(table(result))
    print(f'chosen on {result["num_images"]} validation images: '
          f'{result["chosen"]} (PQ {result["best"]:.1f})')
    for key in result['at_edge']:
        print(f'warning: {key}={result["chosen"][key]:g} is at the edge of '
              'the grid; the best value may lie outside it (widen it with '
              f'--grid {key}=...)')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump({k: v for k, v in result.items()}, f, indent=1)
    return result


if __name__ == '__main__':
    main()

# Where a model loses ground-truth segments on its test images, stage by
# stage (mqformer/evaluation/lost_objects.py): found / lost in merge / low
# score / wrong class / no mask, for things and stuff, with the mean IoU of
# the best query mask. One rule for MQ-Former and mmdet's Mask2Former, so
# the stage where one model loses more objects than the other shows.
#
#   python tools/analysis_tools/lost_objects.py CONFIG CKPT \
#       [--thresholds object_mask_thr=0.3 iou_thr=0.8] [--cfg-options ...]
import argparse
import os

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='where segments are lost')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--thresholds', nargs='+', default=[],
                   metavar='KEY=VALUE',
                   help='panoptic test_cfg values (e.g. the calibrated ones)')
    p.add_argument('--name', default=None, help='row name')
    p.add_argument('--work-dir', default='work_dirs/lost_objects')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   default={})
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import mqformer  # noqa: F401
    from mmdet.utils import register_all_modules

    from mqformer.evaluation.lost_objects import count_lost, stages_table
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    thr = {}
    for item in args.thresholds:
        key, _, value = item.partition('=')
        try:
            thr[key] = float(value)
        except ValueError:
            raise SystemExit(f'--thresholds {item!r}: expected KEY=NUMBER')
    result = count_lost(cfg, args.checkpoint, thr, args.work_dir)
    name = args.name or cfg.model.get('model_type', cfg.model.type)
    print(stages_table({name: result}))
    return result


if __name__ == '__main__':
    main()

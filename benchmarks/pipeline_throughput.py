"""Data pipeline throughput of the unified transforms: images/s in one worker
(the main process), 512 px, per adapter, on generated fixtures.

    python benchmarks/pipeline_throughput.py [--images 40] [--size 512]
"""
import argparse
import tempfile
import time

from mqformer.testing import (ShapesWorld, write_ade_semantic,
                              write_coco_panoptic, write_foreground,
                              write_odvg, write_refcoco)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--images', type=int, default=40)
    p.add_argument('--size', type=int, default=512)
    args = p.parse_args()
    import mqformer  # noqa: F401
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    s = args.size
    world = lambda: ShapesWorld(seed=0, size_range=(s - 32, s + 32))  # noqa
    tail = [dict(type='RandomFlip', prob=0.5),
            dict(type='Resize', scale=(s, s), keep_ratio=True),
            dict(type='PackMQInputs')]
    w = ShapesWorld()
    root = tempfile.mkdtemp()
    write_coco_panoptic(f'{root}/pan', world(), args.images, 'train')
    write_ade_semantic(f'{root}/ade', world(), args.images, 'training')
    write_refcoco(f'{root}/ref', world(), args.images, splits=('train', ))
    write_odvg(f'{root}/vg', world(), args.images)
    write_foreground(f'{root}/fg', world(), args.images)
    cfgs = {
        'COCO panoptic': dict(
            type='CocoPanopticDataset', data_root=f'{root}/pan',
            ann_file='annotations/panoptic_train.json',
            data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
            return_classes=True,
            metainfo=dict(classes=w.thing_classes + w.stuff_classes,
                          thing_classes=w.thing_classes,
                          stuff_classes=w.stuff_classes),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadPanopticSegments'),
                      dict(type='ClassNamesToTexts', task='panoptic')] + tail),
        'ADE semantic': dict(
            type='ADE20KSegDataset', data_root=f'{root}/ade',
            data_prefix=dict(img_path='images/training',
                             seg_map_path='annotations/training'),
            return_classes=True,
            metainfo=dict(classes=w.thing_classes + w.stuff_classes),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=False,
                           with_label=False, with_seg=True,
                           reduce_zero_label=True),
                      dict(type='SemanticToInstances'),
                      dict(type='ClassNamesToTexts', task='semantic')] + tail),
        'RefCOCO': dict(
            type='RefCocoDataset', data_root=f'{root}/ref',
            ann_file='refcoco/instances.json',
            split_file='refcoco/refs(unc).p',
            data_prefix=dict(img_path='train2014/'), split='train',
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_mask=True,
                           with_bbox=False, with_label=False),
                      dict(type='PhrasesToTexts')] + tail),
        'VG (ODVG, boxes)': dict(
            type='ODVGDataset', data_root=f'{root}/vg',
            ann_file='vg_odvg.jsonl', data_prefix=dict(img='images/'),
            return_classes=True,
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations', with_bbox=True),
                      dict(type='PhrasesToTexts', task='grounding')] + tail),
        'foreground': dict(
            type='ForegroundDataset', data_root=f'{root}/fg',
            data_prefix=dict(img='images', seg='masks'),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadForegroundMask'),
                      dict(type='ClassNamesToTexts', task='foreground')] +
            tail),
    }
    print(f'\n| adapter | images/s (1 worker, {s} px) |\n| --- | --- |')
    for name, cfg in cfgs.items():
        ds = DATASETS.build(cfg)
        ds[0]
        t = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        rate = len(ds) / (time.perf_counter() - t)
        print(f'| {name} | {rate:.1f} |')


if __name__ == '__main__':
    main()

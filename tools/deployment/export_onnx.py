# Export MQ-Former to ONNX with the text embeddings as an input, so one file
# serves any vocabulary (tools/deployment/encode_vocabulary.py writes them).
#
#   python tools/deployment/export_onnx.py CONFIG CKPT --out model.onnx \
#       [--shape 512 512] [--opset 17] [--texts "sky" "red circle" \
#        --vocab-out vocab.npz] [--verify] \
#       [--quantize int8|int8-static|fp16 [--calib-images DIR]]
#
# Run the file with mqformer.deploy.ONNXRunner or tools/deployment/onnx_infer.py.
import argparse
import os
import os.path as osp
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(
        description='Export MQ-Former to ONNX (text embeddings as input)')
    p.add_argument('config')
    p.add_argument('checkpoint', help='weights; "none" exports random weights')
    p.add_argument('--out', default='model.onnx')
    p.add_argument('--shape', type=int, nargs=2, default=None,
                   metavar=('H', 'W'),
                   help='padded input size (multiples of 32); default: the '
                   'test pipeline\'s Resize scale rounded up to 32')
    p.add_argument('--dynamic', action='store_true',
                   help='one file for every image size (resized as the test '
                   'pipeline does; --shape is then only the trace size)')
    p.add_argument('--opset', type=int, default=None)
    p.add_argument('--texts', nargs='+', default=None,
                   help='also write a vocabulary file for these texts')
    p.add_argument('--text-type', default='class',
                   choices=['class', 'phrase'])
    p.add_argument('--vocab-out', default=None,
                   help='vocabulary file (default: next to --out)')
    p.add_argument('--verify', action='store_true',
                   help='compare onnxruntime with PyTorch on a random input')
    p.add_argument('--quantize', default=None,
                   choices=['int8', 'int8-static', 'fp16'],
                   help='also write a smaller copy next to --out: int8 '
                   '(dynamic, no calibration), int8-static (calibrated on '
                   '--calib-images with --texts) or fp16')
    p.add_argument('--calib-images', default=None,
                   help='folder of your own images for int8-static')
    p.add_argument('--calib-num', type=int, default=32,
                   help='calibration images used (the first, sorted)')
    p.add_argument('--device', default='cpu')
    args = p.parse_args()
    if args.quantize == 'int8-static' and not (args.calib_images and
                                               args.texts):
        p.error('--quantize int8-static needs --calib-images DIR and --texts '
                '(the vocabulary the ranges are calibrated with)')
    return args


def default_shape(cfg):
    """The test pipeline's Resize scale (w, h) -> (H, W) rounded up to 32."""
    from mqformer.apis.inferencer import test_scale_of
    scale = test_scale_of(cfg)
    if scale is None:
        return (512, 512)
    return tuple(-(-x // 32) * 32 for x in scale[::-1])


def main():
    args = parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import numpy as np
    import torch

    from mqformer.apis import init_model
    from mqformer.deploy import (DEFAULT_OPSET, MQFormerExportModel,
                                 ONNXRunner, encode_vocabulary, export_onnx)
    weights = None if args.checkpoint.lower() == 'none' else args.checkpoint
    model = init_model(args.config, weights, args.device)
    shape = tuple(args.shape) if args.shape else default_shape(model.cfg)
    opset = args.opset or DEFAULT_OPSET
    t0 = time.time()
    try:
        export_onnx(model, args.out, shape, opset, dynamic=args.dynamic)
    except ValueError as e:
        sys.exit(str(e))
    size = '(1, 3, H, W) with H, W dynamic' if args.dynamic else \
        f'(1, 3, {shape[0]}, {shape[1]})'
    print(f'[export] {args.out}: input {size}, text_embeds (1, T, '
          f'{model.embed_dims}) with T dynamic, opset {opset}, '
          f'{time.time() - t0:.1f} s')
    if args.texts:
        vocab_out = args.vocab_out or os.path.splitext(args.out)[0] + \
            '_vocab.npz'
        encode_vocabulary(model, args.texts, args.text_type).save(vocab_out)
        print(f'[export] {vocab_out}: {len(args.texts)} texts')
    if args.quantize:
        from mqformer.deploy import calibration_images, quantize_onnx
        small = f'{osp.splitext(args.out)[0]}_{args.quantize}.onnx'
        images = calibration_images(args.calib_images, args.calib_num) \
            if args.quantize == 'int8-static' else ()
        vocab = encode_vocabulary(model, args.texts, args.text_type) \
            if args.quantize == 'int8-static' else None
        t0 = time.time()
        quantize_onnx(args.out, small, args.quantize, images, vocab)
        print(f'[export] {small}: {args.quantize}, '
              f'{os.path.getsize(small) / 2**20:.1f} MB (float32: '
              f'{os.path.getsize(args.out) / 2**20:.1f} MB), '
              f'{time.time() - t0:.1f} s')
    if args.verify:
        runner = ONNXRunner(args.out)
        g = torch.Generator().manual_seed(0)
        sizes = [shape] + ([(shape[0] + 64, max(32, shape[1] - 96))]
                           if args.dynamic else [])
        for H, W in sizes:
            wrapper = MQFormerExportModel(
                model, None if args.dynamic else (H, W)).eval()
            x = torch.randn(1, 3, H, W, generator=g)
            t = torch.randn(1, 7, model.embed_dims, generator=g)
            s = torch.tensor([H, W * 3 // 4])
            with torch.no_grad():
                ref = wrapper(x, t, s)
            out = runner.session.run(None, dict(
                inputs=x.numpy(), text_embeds=t.numpy(), img_shape=s.numpy()))
            for name, o, r in zip(('cls_scores', 'boxes', 'masks'), out, ref):
                print(f'[verify] {H}x{W} {name}: max |onnxruntime - PyTorch| '
                      f'= {float(np.abs(o - r.numpy()).max()):.2e}')

if __name__ == '__main__':
    main()

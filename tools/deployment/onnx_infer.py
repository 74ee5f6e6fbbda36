# Run an exported MQ-Former with onnxruntime (no PyTorch model is built).
#
#   python tools/deployment/onnx_infer.py model.onnx INPUTS... \
#       --vocab vocab.npz [--task panoptic] [--stuff sky] [--out-dir DIR]
# Writes DIR/<name>.json as tools/infer.py does (RLE masks, boxes, texts).
import argparse
import json
import os
import os.path as osp
import sys

TASKS = ('panoptic', 'instance', 'semantic', 'referring', 'foreground',
         'detection')


def parse_args():
    p = argparse.ArgumentParser(description='MQ-Former ONNX inference')
    p.add_argument('model', help='from tools/deployment/export_onnx.py')
    p.add_argument('inputs', nargs='+', help='image files, folders or globs')
    p.add_argument('--vocab', required=True,
                   help='from tools/deployment/encode_vocabulary.py')
    p.add_argument('--task', default='panoptic', choices=TASKS)
    p.add_argument('--stuff', nargs='*', default=[])
    p.add_argument('--out-dir', default='outputs_onnx')
    p.add_argument('--score-thr', type=float, default=0.3)
    return p.parse_args()


def main():
    args = parse_args()
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from infer import collect  # tools/infer.py: files, folders, globs
    from tqdm import tqdm

    from mqformer.apis import predictions_to_json
    from mqformer.deploy import ONNXRunner, Vocabulary
    files = collect(args.inputs)
    if not files:
        sys.exit(f'no images found in {args.inputs}')
    try:
        vocab = Vocabulary.load(args.vocab)
        runner = ONNXRunner(args.model)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(str(e))
    os.makedirs(args.out_dir, exist_ok=True)
    failed = []
    for path in tqdm(files, desc='onnx_infer', disable=len(files) < 2):
        try:
            sample = runner.predict(path, vocab, args.task, args.stuff)
        except (OSError, ValueError) as e:
            print(f'error: {path}: {e}', file=sys.stderr)
            failed.append(path)
            continue
        name = osp.splitext(osp.basename(path))[0]
        with open(osp.join(args.out_dir, name + '.json'), 'w') as f:
            json.dump(predictions_to_json(sample, args.task, args.score_thr),
                      f)
    print(f'{len(files) - len(failed)} of {len(files)} images -> '
          f'{args.out_dir}')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()

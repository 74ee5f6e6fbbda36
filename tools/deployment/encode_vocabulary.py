# Texts -> their projected embeddings (a vocabulary file for an exported model).
#
#   python tools/deployment/encode_vocabulary.py CONFIG CKPT \
#       --texts "sky" "red circle" | --texts-file names.txt \
#       [--text-type class|phrase] --out vocab.npz
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description='Encode a vocabulary')
    p.add_argument('config')
    p.add_argument('checkpoint', help='the weights the model was exported '
                   'from (the text projection is trained)')
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--texts', nargs='+')
    g.add_argument('--texts-file', help='one text per line')
    p.add_argument('--text-type', default='class', choices=['class', 'phrase'])
    p.add_argument('--out', default='vocab.npz')
    return p.parse_args()


def main():
    args = parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    texts = args.texts
    if args.texts_file:
        if not os.path.isfile(args.texts_file):
            sys.exit(f'--texts-file {args.texts_file} does not exist')
        with open(args.texts_file, encoding='utf-8') as f:
            texts = [line.strip() for line in f if line.strip()]
        if not texts:
            sys.exit(f'--texts-file {args.texts_file} has no texts')
    from mqformer.apis import init_model
    from mqformer.deploy import encode_vocabulary
    model = init_model(args.config, args.checkpoint)
    vocab = encode_vocabulary(model, texts, args.text_type)
    vocab.save(args.out)
    print(f'[vocabulary] {args.out}: {len(texts)} texts, '
          f'{vocab.embeds.shape[1]}-d')


if __name__ == '__main__':
    main()

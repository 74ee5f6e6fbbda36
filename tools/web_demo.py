# A web demo in the browser: drop an image, type texts, pick the task.
#
#   python tools/web_demo.py [CONFIG CKPT] [--port 7860] [--host 127.0.0.1]
#
# Without CONFIG and CKPT it serves the checkpoint `make demo` trains
# (work_dirs/demo/mqformer/final.pth). Needs the `web` extra
# (`pip install .[web]`; tools/install.sh installs it). Nothing is sent
# anywhere: Gradio's analytics are off and the page needs no network.
import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs', 'mqformer',
                       'mqformer_tiny_shapes-multitask.py')
DEMO_CKPT = osp.join(REPO, 'work_dirs', 'demo', 'mqformer', 'final.pth')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='MQ-Former web demo (Gradio)')
    p.add_argument('config', nargs='?', help='model config (default: the '
                   "demo's)")
    p.add_argument('checkpoint', nargs='?',
                   help='weights (default: the demo\'s final.pth); "none" '
                   'serves random weights')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--host', default='127.0.0.1',
                   help='0.0.0.0 to serve other machines')
    p.add_argument('--device', default='cpu')
    p.add_argument('--examples', default=osp.join(REPO, 'data',
                                                  'shapes_world'),
                   help='a generated shapes world whose validation images '
                   'become examples (skipped if absent)')
    args = p.parse_args(argv)
    if (args.config is None) != (args.checkpoint is None):
        p.error('give both CONFIG and CKPT, or neither (the demo\'s)')
    return args


def resolve_model(args):
    """(config, weights) to serve, or exit with how to make the demo's."""
    if args.config is not None:
        for path in (args.config, args.checkpoint):
            if path.lower() != 'none' and not osp.isfile(path):
                sys.exit(f'error: {path} does not exist')
        return args.config, (None if args.checkpoint.lower() == 'none' else
                             args.checkpoint)
    if not osp.isfile(DEMO_CKPT):
        sys.exit(f"error: no CONFIG/CKPT given and the demo's checkpoint "
                 f'{DEMO_CKPT} does not exist yet. Make it with `make demo` '
                 '(about 15 minutes on a CPU), or pass your own: python '
                 'tools/web_demo.py CONFIG CKPT')
    return DEMO_CONFIG, DEMO_CKPT


def main(argv=None):
    args = parse_args(argv)
    config, weights = resolve_model(args)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    try:
        import gradio  # noqa: F401
    except ImportError:
        sys.exit('error: the web demo needs Gradio: pip install -e .[web] '
                 '(tools/install.sh installs it)')
    from mqformer.apis import MQFormerInferencer
    from mqformer.apis.web_demo import WebDemo, build_app, demo_world_examples
    inferencer = MQFormerInferencer(config, weights, args.device)
    app = build_app(WebDemo(inferencer), demo_world_examples(args.examples))
    print(f'[web_demo] {config} with {weights or "random weights"} on '
          f'http://{args.host}:{args.port}')
    app.launch(server_name=args.host, server_port=args.port,
               show_error=True, share=False)


if __name__ == '__main__':
    main()

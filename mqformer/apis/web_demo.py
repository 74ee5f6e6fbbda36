"""The web demo: a Gradio app over :class:`MQFormerInferencer`
(``tools/web_demo.py``). Gradio is the optional extra ``mqformer[web]``;
it is imported only when an app is built."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np

from .inferencer import TASKS, check_texts, read_image, task_switches

# no usage statistics leave the machine (set before gradio is imported)
os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')

TABLE_HEADERS = ['text', 'kind', 'score', 'query type', 'area (px)']
MAX_TEXTS = 2000
MAX_PIXELS = 16_000_000  # larger uploads are scaled down to this first


def parse_texts(texts: str, task: str) -> List[str]:
    """The text box -> texts: one per line; for every task but referring a
    line may also hold several texts separated by commas."""
    lines = [t.strip() for t in (texts or '').splitlines()]
    if task != 'referring':
        lines = [p.strip() for t in lines for p in t.split(',')]
    return [t for t in lines if t]


def segments_table(res: dict) -> List[list]:
    """:func:`predictions_to_json`'s output -> rows of ``TABLE_HEADERS``."""
    rows = []
    for seg in res.get('panoptic', []):
        rows.append([seg['text'], 'thing' if seg['is_thing'] else 'stuff',
                     None, seg.get('query_type', ''), seg['area']])
    for inst in res.get('instances', []):
        area = _rle_area(inst['mask']) if 'mask' in inst else None
        rows.append([inst['text'], 'instance' if 'mask' in inst else 'box',
                     round(inst['score'], 4), inst.get('query_type', ''),
                     area])
    for seg in res.get('semantic', []):
        rows.append([seg['text'], 'semantic', None, '', seg['area']])
    if 'foreground' in res:
        fg = res['foreground']
        rows.append([fg['text'], 'foreground', round(fg['mean'], 4), '',
                     _rle_area(fg['mask'])])
    return rows


def _rle_area(rle: dict) -> int:
    from pycocotools import mask as mask_utils
    return int(mask_utils.area(dict(size=rle['size'],
                                    counts=rle['counts'].encode())))


class WebDemo:
    """What one request of the app does, without Gradio: checks the input,
    runs the inferencer, returns the overlay, the table and the JSON.

    Args:
        inferencer (MQFormerInferencer): the model.
        max_texts (int): more texts than this get a message.
        max_pixels (int): a larger image is scaled down to this many pixels
            first (the test pipeline resizes it further anyway).
    """

    def __init__(self, inferencer, max_texts: int = MAX_TEXTS,
                 max_pixels: int = MAX_PIXELS) -> None:
        self.inferencer = inferencer
        self.max_texts = max_texts
        self.max_pixels = max_pixels

    def check(self, image: Optional[str], texts: Sequence[str], task: str,
              stuff: Sequence[str], score_thr) -> None:
        """A ``ValueError`` with a message for the page, for any input the
        model cannot answer."""
        task_switches(task)  # an unknown task: the list of tasks
        if not image:
            raise ValueError('drop an image (or pick an example) first')
        if not texts:
            raise ValueError('type at least one text: one per line (or '
                             'separated by commas), e.g. "sky, red circle"')
        try:
            check_texts(texts)
        except TypeError as e:
            raise ValueError(str(e))
        if len(texts) > self.max_texts:
            raise ValueError(f'{len(texts)} texts: at most {self.max_texts} '
                             'per request')
        unknown = sorted(set(stuff) - set(texts))
        if unknown:
            raise ValueError(f'stuff texts {unknown} are not among the texts')
        try:
            thr = float(score_thr)
        except (TypeError, ValueError):
            raise ValueError(f'score threshold {score_thr!r} is not a number')
        if not 0 <= thr <= 1:
            raise ValueError(f'score threshold {thr} is not in [0, 1]')

    def load(self, image: str) -> Tuple[np.ndarray, str]:
        """Read the upload (:func:`read_image`'s checks); scale it down to
        ``max_pixels``. Returns the BGR image and a note ('' if unchanged)."""
        img = read_image(image)
        h, w = img.shape[:2]
        if h * w <= self.max_pixels:
            return img, ''
        scale = (self.max_pixels / (h * w))**0.5
        img = mmcv.imrescale(img, scale)
        return img, (f'The image ({w} x {h}, {h * w / 1e6:.1f} MP) was scaled '
                     f'down to {img.shape[1]} x {img.shape[0]} first; '
                     'results are at that size.')

    def __call__(self, image: Optional[str], texts: str, task: str,
                 stuff: str = '', score_thr: float = 0.3
                 ) -> Tuple[np.ndarray, List[list], dict, str]:
        """One request -> (overlay (H, W, 3) RGB, table rows, JSON as
        ``tools/infer.py`` writes it, a status line)."""
        text_list = parse_texts(texts, task)
        stuff_list = parse_texts(stuff, 'panoptic') \
            if task == 'panoptic' else []
        self.check(image, text_list, task, stuff_list, score_thr)
        img, note = self.load(image)
        sample = self.inferencer.predict(img, text_list, task, stuff_list)
        res = self.inferencer.to_json(sample, task, float(score_thr))
        res['image'] = osp.basename(image)
        overlay = self.inferencer.draw(img, sample, float(score_thr))
        rows = segments_table(res)
        status = f'{task}: {len(rows)} results for {len(text_list)} texts.'
        return overlay, rows, res, ' '.join(x for x in (status, note) if x)


def _image_input(gr, **kwargs):
    """gr.Image whose decoding error names the upload instead of failing
    with PIL's message on a temporary path (the instance's preprocess is
    wrapped: a subclass would make Gradio write a stub file next to this
    module)."""
    image = gr.Image(**kwargs)
    decode = image.preprocess

    def preprocess(payload):
        try:
            return decode(payload)
        except gr.Error:
            raise
        except Exception as e:  # PIL: not an image, empty, truncated
            name = getattr(payload, 'orig_name', None) or 'the upload'
            raise gr.Error(f'{name} is not an image that can be read '
                           f'({type(e).__name__}); drop a JPEG or PNG')

    image.preprocess = preprocess
    return image


def build_app(demo: WebDemo, examples: Sequence[Sequence] = (),
              title: str = 'MQ-Former'):
    """The Gradio Blocks app for ``demo``; requests run one at a time."""
    import gradio as gr

    def run(image, texts, task, stuff, score_thr):
        try:
            return demo(image, texts, task, stuff, score_thr)
        except (ValueError, OSError) as e:
            raise gr.Error(str(e))

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f'# {title}: one model, every segmentation task\n'
                    'Drop an image, type what to find, pick the task.')
        with gr.Row():
            with gr.Column():
                image = _image_input(gr, label='image', type='filepath',
                                     elem_id='image')
                texts = gr.Textbox(
                    label='texts (one per line, or separated by commas; '
                    'referring: one expression per line)', lines=3,
                    elem_id='texts')
                task = gr.Radio(list(TASKS), value='panoptic', label='task',
                                elem_id='task')
                stuff = gr.Textbox(label='stuff texts (panoptic: one '
                                   'segment each)', elem_id='stuff')
                score_thr = gr.Slider(0, 1, value=0.3, step=0.01,
                                      label='score threshold',
                                      elem_id='score_thr')
                button = gr.Button('Segment', variant='primary',
                                   elem_id='run')
            with gr.Column():
                overlay = gr.Image(label='result', type='numpy',
                                   elem_id='overlay', interactive=False)
                status = gr.Markdown(elem_id='status')
                table = gr.Dataframe(headers=TABLE_HEADERS, label='segments',
                                     elem_id='table', interactive=False)
                result = gr.JSON(label='JSON (as tools/infer.py writes it)',
                                 elem_id='json')
        inputs = [image, texts, task, stuff, score_thr]
        if examples:
            gr.Examples([list(e) for e in examples], inputs)
        button.click(run, inputs, [overlay, table, result, status],
                     api_name='segment')
    app.queue(default_concurrency_limit=1)
    return app


def demo_world_examples(root: str = 'data/shapes_world',
                        num: int = 3) -> List[list]:
    """Example rows (image, texts, task, stuff, threshold) from the demo
    world's validation images, if it has been generated."""
    img_dir = osp.join(root, 'val')
    if not osp.isdir(img_dir):
        return []
    files = sorted(f for f in os.listdir(img_dir) if f.endswith('.jpg'))
    things = 'red circle, blue square, green triangle, yellow circle'
    rows = [[osp.join(img_dir, f), f'sky, grass, water, road, {things}',
             'panoptic', 'sky, grass, water, road', 0.3]
            for f in files[:num]]
    if files:
        rows.append([osp.join(img_dir, files[0]), things, 'instance', '',
                     0.3])
    return rows

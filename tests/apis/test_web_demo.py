"""The web demo as people use it: tools/web_demo.py serving the tiny model on
127.0.0.1, driven through gradio_client (every task equals
MQFormerInferencer's result on the same input; bad inputs get a message) and
in headless Chromium when one is installed."""
import json
import os
import os.path as osp
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest

from conftest import REPO, TINY_CFG
from mqformer.testing import ShapesWorld

pytest.importorskip('gradio_client', reason='the web extra is not installed '
                    '(pip install -e .[web]; tools/install.sh installs it)')

sys.path.insert(0, osp.join(REPO, 'tools'))
TEXTS = 'sky, grass, water, road, red circle, blue square'
STUFF = 'sky, grass, water, road'
THR = 0.2


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp('web')
    rgb = ShapesWorld(seed=7).sample()[0]
    path = str(d / 'shapes.jpg')
    cv2.imwrite(path, rgb[..., ::-1])
    return path


@pytest.fixture(scope='module')
def server(tiny_checkpoint, tmp_path_factory):
    """tools/web_demo.py on a free port; yields its URL."""
    from web_demo_check import free_port
    port = free_port()
    log = tmp_path_factory.mktemp('server') / 'log.txt'
    env = dict(os.environ, HF_HUB_OFFLINE='1')
    with open(log, 'w') as f:
        proc = subprocess.Popen(
            [sys.executable, osp.join(REPO, 'tools', 'web_demo.py'), TINY_CFG,
             tiny_checkpoint, '--port', str(port), '--examples', 'none'],
            stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f'http://127.0.0.1:{port}/'
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.fail(f'web_demo.py exited: {log.read_text()}')
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f'web_demo.py did not answer: {log.read_text()}')
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope='module')
def client(server):
    from gradio_client import Client
    return Client(server, verbose=False)


@pytest.fixture(scope='module')
def inferencer(tiny_checkpoint):
    from mqformer.apis import MQFormerInferencer
    return MQFormerInferencer(TINY_CFG, tiny_checkpoint, score_thr=THR)


def segment(client, image, texts=TEXTS, task='panoptic', stuff=STUFF,
            thr=THR):
    from gradio_client import handle_file
    return client.predict(handle_file(image), texts, task, stuff, thr,
                          api_name='/segment')


def expected(inferencer, image, task):
    from mqformer.apis.web_demo import parse_texts
    texts = parse_texts(TEXTS, task) if task != 'foreground' else \
        ['foreground']
    sample = inferencer.predict(image, texts, task,
                                parse_texts(STUFF, task)
                                if task == 'panoptic' else [])
    res = inferencer.to_json(sample, task)
    res['image'] = osp.basename(image)
    return json.loads(json.dumps(res))


@pytest.mark.parametrize('task', ['panoptic', 'instance', 'semantic',
                                  'referring', 'foreground', 'detection'])
def test_every_task_equals_the_inferencer(client, inferencer, image, task):
    texts = 'foreground' if task == 'foreground' else TEXTS
    overlay, table, res, status = segment(client, image, texts, task)
    assert res == expected(inferencer, image, task)
    h, w = cv2.imread(image).shape[:2]
    assert cv2.imread(overlay).shape[:2] == (h, w)
    # one table row per segment / instance of the JSON
    n = len(res.get('panoptic', [])) + len(res.get('instances', [])) + \
        len(res.get('semantic', [])) + int('foreground' in res)
    assert n > 0 and len(table['data']) == n
    assert status.startswith(f'{task}: {n} results')
    if task in ('panoptic', 'instance'):
        types = {row[3] for row in table['data']}
        assert types <= {'conditional', 'learnable'} and types


def app_error(client, *args, **kwargs) -> str:
    from gradio_client.exceptions import AppError
    with pytest.raises(AppError) as e:
        segment(client, *args, **kwargs)
    return str(e.value)


def test_bad_inputs_get_a_message(client, image, tmp_path):
    not_image = tmp_path / 'notes.jpg'
    not_image.write_text('this is text, not a picture')
    msg = app_error(client, str(not_image))
    assert 'notes.jpg is not an image' in msg
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    assert 'empty.png is not an image' in app_error(client, str(empty))
    assert 'type at least one text' in app_error(client, image, texts='')
    assert 'type at least one text' in app_error(client, image,
                                                 texts=' , ,\n ')
    assert 'not among the texts' in app_error(client, image, stuff='ocean')
    msg = app_error(client, image, texts=', '.join(
        f'thing {i}' for i in range(2001)))
    assert '2001 texts: at most 2000' in msg
    # an unknown task sent through the API (the page offers only six)
    assert 'depth' in app_error(client, image, task='depth')
    # the app still answers after all of them
    assert segment(client, image)[3].startswith('panoptic:')


def test_many_texts_and_a_huge_image(client, image, tmp_path):
    texts = '\n'.join(['sky', 'red circle'] +
                      [f'object number {i}' for i in range(1498)])
    _, table, res, _ = segment(client, image, texts, 'semantic', '')
    assert len(res['texts']) == 1500 and len(table['data']) >= 1
    # 30 megapixels: scaled down to 16 MP first, and the page says so
    rgb = cv2.imread(image)
    huge = str(tmp_path / 'huge.jpg')
    cv2.imwrite(huge, cv2.resize(rgb, (6000, 5000)))
    overlay, _, res, status = segment(client, huge, task='instance',
                                      stuff='')
    assert 'scaled down' in status and '6000 x 5000' in status
    assert res['height'] * res['width'] <= 16_000_000
    assert res['height'] * res['width'] > 15_900_000
    assert cv2.imread(overlay).shape[:2] == (res['height'], res['width'])


def test_two_requests_at_once_queue(client, inferencer, image):
    from gradio_client import handle_file
    jobs = [client.submit(handle_file(image), TEXTS, task, STUFF, THR,
                          api_name='/segment')
            for task in ('panoptic', 'instance')]
    for job, task in zip(jobs, ('panoptic', 'instance')):
        assert job.result(timeout=300)[2] == expected(inferencer, image,
                                                      task)


def test_without_a_checkpoint_it_says_how_to_make_one(monkeypatch):
    import web_demo
    monkeypatch.setattr(web_demo, 'DEMO_CKPT', '/nonexistent/final.pth')
    with pytest.raises(SystemExit) as e:
        web_demo.resolve_model(web_demo.parse_args([]))
    assert 'make demo' in str(e.value)
    with pytest.raises(SystemExit):
        web_demo.parse_args([TINY_CFG])  # CONFIG without CKPT


def test_text_box_parsing_and_table():
    from mqformer.apis.web_demo import parse_texts
    assert parse_texts('sky, red circle\n grass ,\n\n', 'panoptic') == [
        'sky', 'red circle', 'grass']
    # referring expressions keep their commas
    assert parse_texts('the circle, left of the square\nthe sky',
                       'referring') == ['the circle, left of the square',
                                        'the sky']


def test_in_a_real_browser(server, image, tmp_path):
    """Headless Chromium: upload, type, run; the overlay appears and the
    screenshot is a picture of the page."""
    from web_demo_check import check_in_browser, find_browser
    if find_browser() is None:
        pytest.skip('no Chromium and chromedriver on PATH (apt-get install '
                    'chromium chromium-driver): the browser check did not '
                    'run')
    out = str(tmp_path / 'page.png')
    seen = check_in_browser(server, image, TEXTS, 'panoptic', STUFF, out,
                            timeout=120)
    assert seen['overlay'], seen
    assert seen['status'].startswith('panoptic:')
    assert int(seen['status'].split()[1]) > 0  # 'panoptic: N results ...'
    page = cv2.imread(out)
    assert page is not None and page.shape[0] > 500 and np.std(page) > 10

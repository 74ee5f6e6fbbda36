# The web demo in a real browser: start the app, open it in headless
# Chromium, upload an image, type texts, run, wait for the overlay and save a
# screenshot.
#
#   python tools/web_demo_check.py [CONFIG CKPT] [--image IMG] \
#       [--texts "sky, red circle"] [--task panoptic] [--stuff sky] \
#       [--out web_demo.png]
#
# Needs Debian's `chromium` and `chromium-driver` (apt-get install chromium
# chromium-driver) and the `web` extra (selenium drives the system browser;
# nothing is downloaded). Exit code 0 when the overlay appeared; the
# screenshot and the page's status line are printed either way.
import argparse
import os
import os.path as osp
import shutil
import socket
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools'))
BROWSERS = ('chromium', 'chromium-browser', 'google-chrome')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='web demo check in Chromium')
    p.add_argument('config', nargs='?')
    p.add_argument('checkpoint', nargs='?', help='"none": random weights')
    p.add_argument('--image', default=None,
                   help='default: the first demo-world validation image, '
                   'or a generated one')
    p.add_argument('--texts', default='sky, grass, water, road, red circle, '
                   'yellow circle, blue square, green triangle')
    p.add_argument('--task', default='panoptic')
    p.add_argument('--stuff', default='sky, grass, water, road')
    p.add_argument('--out', default='web_demo.png')
    p.add_argument('--timeout', type=float, default=180)
    return p.parse_args(argv)


def find_browser():
    """(chromium, chromedriver) paths, or None where either is missing."""
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)),
                   None)
    driver = shutil.which('chromedriver')
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def default_image(tmp_dir: str) -> str:
    img = osp.join(REPO, 'data', 'shapes_world', 'val', 'val_00000.jpg')
    if osp.isfile(img):
        return img
    import cv2

    from mqformer.testing import ShapesWorld
    rgb = ShapesWorld(seed=0).sample()[0]
    img = osp.join(tmp_dir, 'shapes.jpg')
    cv2.imwrite(img, rgb[..., ::-1])
    return img


def check_in_browser(url: str, image: str, texts: str, task: str,
                     stuff: str, out: str, timeout: float = 180) -> dict:
    """Drive the page at ``url`` as a person would; returns what it showed:
    ``overlay`` (bool), ``status`` (the page's status line, e.g.
    'panoptic: 5 results for 9 texts.'), ``screenshot`` (path)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    browser, driver_path = find_browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
              '--disable-gpu', '--window-size=1400,1300'):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, timeout)
        upload = wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '#image input[type=file]')))
        upload.send_keys(osp.abspath(image))
        wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '#image img')))
        driver.find_element(By.CSS_SELECTOR, '#texts textarea').send_keys(
            texts)
        driver.find_element(
            By.CSS_SELECTOR, f'#task input[value="{task}"]').click()
        driver.find_element(By.CSS_SELECTOR, '#stuff textarea').send_keys(
            stuff)
        driver.find_element(By.CSS_SELECTOR, '#run').click()
        shown = True
        try:
            wait.until(EC.presence_of_element_located(
                (By.CSS_SELECTOR, '#overlay img')))
            wait.until(lambda d: d.find_element(
                By.CSS_SELECTOR, '#status').text.strip())
        except Exception:  # a timeout: still save what the page shows
            shown = False
        time.sleep(1.0)  # let the table and JSON render for the picture
        status = driver.find_element(By.CSS_SELECTOR, '#status').text.strip()
        driver.save_screenshot(out)
        return dict(overlay=shown, status=status, screenshot=out)
    finally:
        driver.quit()


def main(argv=None):
    args = parse_args(argv)
    if find_browser() is None:
        sys.exit('error: no Chromium and chromedriver on PATH: apt-get '
                 'install chromium chromium-driver')
    import tempfile

    import web_demo
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from mqformer.apis import MQFormerInferencer
    from mqformer.apis.web_demo import WebDemo, build_app
    config, weights = web_demo.resolve_model(web_demo.parse_args(
        [a for a in (args.config, args.checkpoint) if a]))
    tmp = tempfile.mkdtemp()
    image = args.image or default_image(tmp)
    app = build_app(WebDemo(MQFormerInferencer(config, weights)))
    port = free_port()
    app.launch(server_name='127.0.0.1', server_port=port, show_error=True,
               prevent_thread_lock=True)
    try:
        seen = check_in_browser(f'http://127.0.0.1:{port}/', image,
                                args.texts, args.task, args.stuff, args.out,
                                args.timeout)
    finally:
        app.close()
    print(f'[web_demo_check] overlay shown: {seen["overlay"]}; status: '
          f'{seen["status"]!r}; screenshot: '
          f'{seen["screenshot"]}')
    sys.exit(0 if seen['overlay'] else 1)


if __name__ == '__main__':
    main()

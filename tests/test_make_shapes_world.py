"""tools/dataset_converters/make_shapes_world.py keeps a world made with the
same settings and makes it again, without stale files, when they differ
(`demo.py --val-images N` on a world generated with other counts)."""
import json
import os
import subprocess
import sys

from conftest import REPO

TOOL = f'{REPO}/tools/dataset_converters/make_shapes_world.py'


def make(root, *args):
    out = subprocess.run([sys.executable, TOOL, str(root), *args],
                         capture_output=True, text=True, check=True)
    return out.stdout


def counts(root):
    pan = json.load(open(root / 'annotations' / 'panoptic_val.json'))
    return (len(pan['images']), len(os.listdir(root / 'val')),
            len(os.listdir(root / 'fg' / 'val' / 'images')))


def test_same_settings_kept_other_settings_made_again(tmp_path):
    root = tmp_path / 'world'
    make(root, '--train', '2', '--val', '3')
    assert counts(root) == (3, 3, 3)
    assert json.load(open(root / 'world.json'))['val'] == 3
    stamp = os.path.getmtime(root / 'annotations' / 'panoptic_val.json')

    assert 'exists' in make(root, '--train', '2', '--val', '3')
    assert os.path.getmtime(
        root / 'annotations' / 'panoptic_val.json') == stamp

    log = make(root, '--train', '2', '--val', '2')
    assert 'making it again' in log and "'val': 3" in log
    # the third val image of the larger world is gone from every folder
    assert counts(root) == (2, 2, 2)
    assert json.load(open(root / 'world.json'))['val'] == 2


def test_world_without_settings_is_made_again(tmp_path):
    """A world from before the settings file (or a half-written one: the
    file is written last) is not trusted."""
    root = tmp_path / 'world'
    make(root, '--train', '2', '--val', '2')
    os.remove(root / 'world.json')
    assert 'making it again' in make(root, '--train', '2', '--val', '2')
    assert (root / 'world.json').is_file() and counts(root) == (2, 2, 2)

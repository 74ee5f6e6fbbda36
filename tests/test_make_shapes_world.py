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
    """The tool's main in this process (its command line is run as a
    subprocess below); returns what it printed."""
    import contextlib
    import importlib.util
    import io
    spec = importlib.util.spec_from_file_location('make_shapes_world', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tool.main([str(root), *map(str, args)])
    return out.getvalue()


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


def test_unfinished_or_older_world_is_made_again(tmp_path):
    """A run killed halfway leaves world.json with finished=False; a world
    from before world.json (its last folder, vg/, written) is still ours."""
    root = tmp_path / 'world'
    make(root, '--train', '2', '--val', '2')
    settings = json.load(open(root / 'world.json'))
    json.dump(dict(settings, finished=False), open(root / 'world.json', 'w'))
    assert 'making it again' in make(root, '--train', '2', '--val', '2')
    assert json.load(open(root / 'world.json')) == settings

    os.remove(root / 'world.json')
    (root / 'val' / 'stale.jpg').write_bytes(b'')
    assert 'making it again' in make(root, '--train', '2', '--val', '2')
    assert not (root / 'val' / 'stale.jpg').exists()
    assert counts(root) == (2, 2, 2)


def test_folders_of_something_else_are_never_removed(tmp_path):
    root = tmp_path / 'data'
    (root / 'train').mkdir(parents=True)
    (root / 'train' / 'mine.jpg').write_bytes(b'x')
    r = subprocess.run([sys.executable, TOOL, str(root), '--train', '2',
                        '--val', '2'], capture_output=True, text=True)
    assert r.returncode != 0
    assert 'no world.json' in r.stderr and "'train'" in r.stderr
    assert (root / 'train' / 'mine.jpg').read_bytes() == b'x'
    make(root, '--train', '2', '--val', '2', '--force')  # writes alongside
    assert (root / 'train' / 'mine.jpg').read_bytes() == b'x'
    assert counts(root) == (2, 2, 2)

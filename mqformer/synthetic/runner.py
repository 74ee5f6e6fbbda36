"""Dataset-scale, resumable, sharded annotation of a COCO-format set.

Each image's result is written to its own JSON file in the work dir with an
atomic rename, so a killed run loses at most the images in flight and a rerun
skips what is done. ``--shard i/N`` takes every N-th image; ``merge`` folds all
per-image results into one COCO json.
"""
import json
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Tuple

import mmcv
from tqdm import tqdm


def parse_shard(shard: Optional[str]) -> Tuple[int, int]:
    """'i/N' -> (i, N), 0 <= i < N."""
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split('/'))
    except ValueError:
        raise ValueError(f'--shard must look like i/N, got {shard!r}')
    if not 0 <= i < n:
        raise ValueError(f'--shard {shard}: need 0 <= i < N')
    return i, n


def load_coco(ann_file: str) -> dict:
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'annotation file not found: {ann_file}')
    with open(ann_file) as f:
        return json.load(f)


def images_with_boxes(coco: dict) -> List[Tuple[dict, List[dict]]]:
    """(image, its annotations) sorted by image id."""
    by_img: Dict[int, List[dict]] = {}
    for a in coco['annotations']:
        by_img.setdefault(a['image_id'], []).append(a)
    return [(img, by_img.get(img['id'], []))
            for img in sorted(coco['images'], key=lambda i: i['id'])]


def atomic_json(path: str, obj) -> None:
    tmp = f'{path}.tmp.{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def remove_stale_temps(work_dir: str) -> List[str]:
    """Delete ``*.tmp.<pid>`` files left by killed runs (their process is
    gone); temps of running processes (other shards on this machine) stay.
    Returns the removed names."""
    removed = []
    for name in os.listdir(work_dir):
        _, sep, pid = name.rpartition('.tmp.')
        if sep and pid.isdigit() and not _alive(int(pid)):
            os.remove(osp.join(work_dir, name))
            removed.append(name)
    return removed


def run_images(coco: dict, img_dir: str, work_dir: str,
               annotate: Callable[[object, List[dict]], Dict[int, dict]],
               shard: Optional[str] = None, limit: Optional[int] = None,
               desc: str = 'images') -> int:
    """Annotate this shard's images not done yet; returns how many ran.

    ``annotate(rgb_image, annotations)`` returns ``{annotation id: fields}``.
    """
    i, n = parse_shard(shard)
    os.makedirs(work_dir, exist_ok=True)
    remove_stale_temps(work_dir)  # a killed run's half-written result
    todo = [x for k, x in enumerate(images_with_boxes(coco)) if k % n == i]
    if limit is not None:
        todo = todo[:limit]
    done = 0
    for img, anns in tqdm(todo, desc=desc):
        out = osp.join(work_dir, f'{img["id"]}.json')
        if osp.exists(out):
            continue
        path = osp.join(img_dir, img['file_name'])
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {path} (id {img["id"]}) not found')
        bgr = mmcv.imread(path, flag='color')
        if bgr is None:
            raise ValueError(f'cannot decode image {path}')
        result = annotate(mmcv.bgr2rgb(bgr), anns) if anns else {}
        atomic_json(out, {str(k): v for k, v in result.items()})
        done += 1
    return done


def merge(coco: dict, work_dir: str, out_file: str,
          keep: Callable[[dict], bool] = lambda fields: True) -> dict:
    """Fold per-image results into ``coco``'s annotations and write it.

    Images without a result file are an error (run every shard first).
    Annotations whose fields fail ``keep`` are dropped; returns counts.
    """
    missing = [img['id'] for img in coco['images']
               if not osp.exists(osp.join(work_dir, f'{img["id"]}.json'))]
    if missing:
        raise RuntimeError(f'{len(missing)} images have no result in '
                           f'{work_dir} (e.g. ids {missing[:5]}); run all '
                           'shards before merging')
    results = {}
    for img in coco['images']:
        with open(osp.join(work_dir, f'{img["id"]}.json')) as f:
            results.update({int(k): v for k, v in json.load(f).items()})
    anns, dropped = [], 0
    for a in coco['annotations']:
        fields = results.get(a['id'])
        if fields is None or not keep(fields):
            dropped += 1
            continue
        anns.append({**a, **fields})
    out = {**coco, 'annotations': anns}
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    atomic_json(out_file, out)
    return dict(kept=len(anns), dropped=dropped)

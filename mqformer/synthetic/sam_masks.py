"""Box-prompted masks with Segment Anything (Hugging Face ``SamModel``)."""
from typing import Dict, List

import numpy as np
import torch

from ..apis.inferencer import encode_mask
from .models import load_pretrained


class SamBoxMasker:
    """Prompt SAM with every box of an image and keep its best mask.

    Args:
        model (str): local folder or hub id of a SAM checkpoint (any size,
            e.g. ``facebook/sam-vit-huge``).
        device (str): ``'cpu'`` or ``'cuda'``.
        batch_size (int): boxes per SAM forward.
        box_pad (float): the mask is clipped to its box grown by this
            fraction of the box size on each side.
    """

    def __init__(self, model: str, device: str = 'cpu', batch_size: int = 16,
                 box_pad: float = 0.1) -> None:
        from transformers import SamModel, SamProcessor
        self.model = load_pretrained(SamModel, model).to(device).eval()
        self.processor = load_pretrained(SamProcessor, model)
        self.device = device
        self.batch_size = batch_size
        self.box_pad = box_pad

    def padded_box(self, xyxy, h: int, w: int) -> List[int]:
        x1, y1, x2, y2 = xyxy
        px, py = self.box_pad * (x2 - x1), self.box_pad * (y2 - y1)
        return [max(0, int(np.floor(x1 - px))), max(0, int(np.floor(y1 - py))),
                min(w, int(np.ceil(x2 + px))), min(h, int(np.ceil(y2 + py)))]

    @torch.no_grad()
    def __call__(self, image: np.ndarray, anns: List[dict]) -> Dict[int, dict]:
        """(H, W, 3) RGB + COCO annotations -> {ann id: segmentation (RLE),
        sam_score (SAM's predicted IoU), area}."""
        h, w = image.shape[:2]
        out = {}
        for s in range(0, len(anns), self.batch_size):
            chunk = anns[s:s + self.batch_size]
            boxes = [[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                      a['bbox'][1] + a['bbox'][3]] for a in chunk]
            inputs = self.processor(images=[image], input_boxes=[boxes],
                                    return_tensors='pt').to(self.device)
            pred = self.model(**inputs, multimask_output=True)
            masks = self.processor.image_processor.post_process_masks(
                pred.pred_masks.cpu(), inputs['original_sizes'].cpu(),
                inputs['reshaped_input_sizes'].cpu())[0]  # (K, 3, H, W)
            scores = pred.iou_scores[0].cpu()  # (K, 3)
            best = scores.argmax(-1)
            for k, a in enumerate(chunk):
                m = masks[k, best[k]].numpy().astype(bool)
                x1, y1, x2, y2 = self.padded_box(boxes[k], h, w)
                clipped = np.zeros_like(m)
                clipped[y1:y2, x1:x2] = m[y1:y2, x1:x2]
                out[a['id']] = dict(segmentation=encode_mask(clipped),
                                    sam_score=float(scores[k, best[k]]),
                                    area=int(clipped.sum()))
        return out

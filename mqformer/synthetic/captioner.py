"""Object captions from an image-to-text model (BLIP-style, Hugging Face)."""
from typing import Dict, List

import numpy as np
import torch

from .models import load_pretrained


class ObjectCaptioner:
    """Crop every object with context padding and caption it: the top
    ``num_captions`` beam-search captions with their scores.

    Args:
        model (str): local folder or hub id of an image-to-text model that
            ``AutoModelForImageTextToText`` (``AutoModelForVision2Seq``)
            and ``AutoProcessor`` load (BLIP, BLIP-2, GIT, ...).
        context_pad (float): crop = box grown by this fraction per side.
        num_captions (int): captions kept per object (<= num_beams).
        num_beams (int), max_new_tokens (int): generation settings.
        batch_size (int): crops per generate call.
        prompt (str, optional): text prefix for models that take one.
    """

    def __init__(self, model: str, device: str = 'cpu',
                 context_pad: float = 0.2, num_captions: int = 5,
                 num_beams: int = 5, max_new_tokens: int = 20,
                 batch_size: int = 8, prompt: str = None) -> None:
        import transformers
        auto = getattr(transformers, 'AutoModelForImageTextToText', None) or \
            getattr(transformers, 'AutoModelForVision2Seq')
        if num_captions > num_beams:
            raise ValueError('num_captions must be <= num_beams')
        self.model = load_pretrained(auto, model).to(device).eval()
        self.processor = load_pretrained(transformers.AutoProcessor, model)
        self.device = device
        self.context_pad = context_pad
        self.num_captions = num_captions
        self.num_beams = num_beams
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.prompt = prompt

    def crop(self, image: np.ndarray, bbox) -> np.ndarray:
        h, w = image.shape[:2]
        x, y, bw, bh = bbox
        px, py = self.context_pad * bw, self.context_pad * bh
        x1, y1 = max(0, int(x - px)), max(0, int(y - py))
        x2, y2 = min(w, int(np.ceil(x + bw + px))), min(h, int(np.ceil(y + bh + py)))
        return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]

    @torch.no_grad()
    def __call__(self, image: np.ndarray, anns: List[dict]) -> Dict[int, dict]:
        """(H, W, 3) RGB + annotations -> {ann id: captions, caption_scores}."""
        out = {}
        k = self.num_captions
        for s in range(0, len(anns), self.batch_size):
            chunk = anns[s:s + self.batch_size]
            crops = [self.crop(image, a['bbox']) for a in chunk]
            kwargs = dict(images=crops, return_tensors='pt')
            if self.prompt:
                kwargs['text'] = [self.prompt] * len(crops)
            inputs = self.processor(**kwargs).to(self.device)
            gen = self.model.generate(
                **inputs, num_beams=self.num_beams, num_return_sequences=k,
                max_new_tokens=self.max_new_tokens, do_sample=False,
                output_scores=True, return_dict_in_generate=True)
            texts = self.processor.batch_decode(gen.sequences,
                                                skip_special_tokens=True)
            scores = gen.sequences_scores.cpu().tolist()
            for j, a in enumerate(chunk):
                caps = [t.strip() for t in texts[j * k:(j + 1) * k]]
                out[a['id']] = dict(captions=caps,
                                    caption_scores=scores[j * k:(j + 1) * k])
        return out

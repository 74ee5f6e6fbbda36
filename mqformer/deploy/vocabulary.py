"""A vocabulary: texts and their projected embeddings, cached to a file."""
import os.path as osp
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch

from ..apis.inferencer import check_texts
from ..models.text_encoders import CLASS_TEXT


@dataclass
class Vocabulary:
    """Texts and their embeddings in the model's query space.

    Attributes:
        texts (list[str]): T texts.
        embeds (np.ndarray): (T, C) float32 ``model.text_proj(text_encoder(
            texts))``, what the exported graph takes as ``text_embeds``.
        text_type (str): ``'class'`` (prompt templates applied) or
            ``'phrase'``.
    """
    texts: List[str]
    embeds: np.ndarray
    text_type: str = CLASS_TEXT

    def __post_init__(self) -> None:
        if self.embeds.ndim != 2 or len(self.embeds) != len(self.texts):
            raise ValueError(
                f'embeds must be (T, C) with T = {len(self.texts)} texts, got '
                f'{tuple(self.embeds.shape)}')

    def save(self, path: str) -> None:
        """Write ``path`` (.npz: ``texts``, ``embeds``, ``text_type``)."""
        np.savez(path, texts=np.array(self.texts, dtype=str),
                 embeds=self.embeds.astype(np.float32),
                 text_type=np.array(self.text_type))

    @classmethod
    def load(cls, path: str) -> 'Vocabulary':
        if not osp.isfile(path):
            raise FileNotFoundError(f'vocabulary file {path} does not exist; '
                                    'write one with '
                                    'tools/deployment/encode_vocabulary.py')
        with np.load(path, allow_pickle=False) as f:
            missing = {'texts', 'embeds'} - set(f.files)
            if missing:
                raise ValueError(f'{path}: not a vocabulary file (no '
                                 f'{sorted(missing)})')
            return cls([str(t) for t in f['texts']],
                       f['embeds'].astype(np.float32),
                       str(f['text_type']) if 'text_type' in f.files
                       else CLASS_TEXT)


@torch.no_grad()
def encode_vocabulary(model, texts: Sequence[str],
                      text_type: str = CLASS_TEXT) -> Vocabulary:
    """Texts -> :class:`Vocabulary` with the model's text encoder and text
    projection (the part of the network the exported graph leaves out)."""
    check_texts(texts)
    was_training = model.training
    model.eval()
    try:
        embeds, _ = model.text_encoder([list(texts)], [text_type])
        embeds = model.text_proj(embeds)[0]
    finally:
        model.train(was_training)
    return Vocabulary(list(texts), embeds.float().cpu().numpy(), text_type)

"""A horizontal flip that mirrors the spatial words of phrase texts."""
import re

from mmdet.datasets.transforms import RandomFlip
from mmdet.registry import TRANSFORMS

_SIDE = re.compile(r'\b(left|right)(most|ward|wards|hand)?\b', re.IGNORECASE)


def mirror_phrase(text: str) -> str:
    """'the man on the LEFT, rightmost cup' -> 'the man on the RIGHT,
    leftmost cup' (case kept; 'left-hand' -> 'right-hand')."""

    def swap(m: re.Match) -> str:
        word = m.group(1)
        other = 'right' if word.lower() == 'left' else 'left'
        if word.isupper():
            other = other.upper()
        elif word[0].isupper():
            other = other.capitalize()
        return other + (m.group(2) or '')

    return _SIDE.sub(swap, text)


@TRANSFORMS.register_module()
class RandomFlipPhrases(RandomFlip):
    """mmdet's ``RandomFlip`` for phrase data (referring expressions,
    grounding phrases, synthetic captions): a horizontal (or diagonal) flip
    also swaps "left" and "right" in the phrases, so "the cup on the left"
    still names the flipped cup. Vertical flips leave the words alone.

    The phrases are read where the phrase datasets keep them before
    :class:`PhrasesToTexts`: ``results['text']`` (mmdet's
    ``RefCocoDataset``, :class:`SampleCaptions`) and
    ``results['phrases'][i]['phrase']`` (mmdet's ``ODVGDataset``, VG mode).
    Use it instead of ``RandomFlip`` in every phrase pipeline (one rule for
    all phrase data); class-name pipelines keep ``RandomFlip``.
    """

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        if results['flip_direction'] not in ('horizontal', 'diagonal'):
            return
        if 'phrases' in results:
            results['phrases'] = {
                k: dict(v, phrase=mirror_phrase(v['phrase']))
                for k, v in results['phrases'].items()
            }
        elif isinstance(results.get('text'), (list, tuple)):
            results['text'] = [mirror_phrase(t) for t in results['text']]

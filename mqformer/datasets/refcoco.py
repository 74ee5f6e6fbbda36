"""RefCOCO/+/g with a new sentence drawn per ref every time a sample loads."""
import random
from typing import List

from mmdet.datasets import RefCocoDataset
from mmdet.registry import DATASETS


@DATASETS.register_module()
class RefCocoSentencesDataset(RefCocoDataset):
    """mmdet's ``RefCocoDataset`` whose ``text_mode='random'`` draws one of a
    ref's sentences each time the sample is loaded (an epoch sees new
    sentences), not once when the annotation file is read (mmdet: the same
    sentence for the whole run). Other text modes are mmdet's.

    Each data info keeps ``ref_sentences``: one list of sentences per ref,
    aligned with ``instances``; ``text`` is drawn from it in
    :meth:`get_data_info` with Python's ``random`` (seeded per worker by
    mmengine, so a fixed seed reproduces the draws).
    """

    def load_data_list(self) -> List[dict]:
        if self.text_mode != 'random':
            return super().load_data_list()
        self.text_mode = 'original'  # every sentence, one instance each
        try:
            data_list = super().load_data_list()
        finally:
            self.text_mode = 'random'
        for info in data_list:
            # mmdet repeats one instance dict per sentence of a ref:
            # consecutive entries of the same object are one ref
            instances, groups = [], []
            for inst, text in zip(info['instances'], info['text']):
                if instances and inst is instances[-1]:
                    groups[-1].append(text)
                else:
                    instances.append(inst)
                    groups.append([text])
            info['instances'] = instances
            info['ref_sentences'] = groups
            info['text'] = [g[0] for g in groups]
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if self.text_mode == 'random' and 'ref_sentences' in info:
            info['text'] = [random.choice(g) for g in info['ref_sentences']]
        return info

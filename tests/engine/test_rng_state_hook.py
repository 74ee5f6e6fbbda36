"""RNGStateHook's states: CPU ones always, every CUDA device's when present
(a GPU run resumed without them draws other denoising noise)."""
import torch


def test_cuda_states_are_saved_and_restored_when_present(monkeypatch):
    from mqformer.engine import rng_state_hook as rsh
    saved = [torch.tensor([1, 2], dtype=torch.uint8),
             torch.tensor([3, 4], dtype=torch.uint8)]
    restored = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'get_rng_state_all', lambda: saved)
    monkeypatch.setattr(torch.cuda, 'set_rng_state',
                        lambda s, i: restored.__setitem__(i, s))
    states = rsh.get_rng_states()
    assert states['cuda'] is saved
    rsh.set_rng_states(dict(states, torch=torch.get_rng_state()))
    assert sorted(restored) == [0, 1]
    assert torch.equal(restored[1], saved[1])
    # without CUDA the key is absent and nothing CUDA is touched
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert 'cuda' not in rsh.get_rng_states()

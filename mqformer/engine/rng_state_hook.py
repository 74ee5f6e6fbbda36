"""Resume a run bit for bit: the random states travel with the checkpoint."""
import logging
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmdet.registry import HOOKS


def get_rng_states() -> dict:
    """Python's, numpy's, torch's CPU and (when present) every CUDA
    device's random states."""
    states = dict(python=random.getstate(), numpy=np.random.get_state(),
                  torch=torch.get_rng_state())
    if torch.cuda.is_available():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'])
    if states.get('cuda') and torch.cuda.is_available():
        cuda = states['cuda']
        if len(cuda) != torch.cuda.device_count():
            print_log(f'resume: the checkpoint has the random states of '
                      f'{len(cuda)} CUDA device(s), this machine '
                      f'{torch.cuda.device_count()}: the common ones are '
                      'restored', logger='current', level=logging.WARNING)
        for i, state in enumerate(cuda[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, i)


class _RestoreBeforeBatch:
    """Wraps the loop's data iterator: after the ``skip`` batches mmengine
    replays to reach the resumed iteration (their transforms draw random
    numbers again), the saved states are restored, so the next batch and
    the model see the numbers of the uninterrupted run."""

    def __init__(self, iterator, skip: int, states: dict) -> None:
        self.iterator = iterator
        self.skip = skip
        self.states: Optional[dict] = states

    def __iter__(self):
        return self

    def __next__(self):
        if self.states is not None and self.skip == 0:
            set_rng_states(self.states)
            self.states = None
        self.skip -= 1
        return next(self.iterator)

    def __getattr__(self, name):
        return getattr(self.iterator, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves Python's, numpy's, torch's and CUDA's random states in every
    checkpoint (``rng_states``) and restores them on resume right before
    the first resumed batch is drawn: the denoising noise, caption and template
    draws, flips and point sampling continue exactly where the interrupted
    run was, so a killed run resumed with ``--resume`` ends with the same
    weights as an uninterrupted one (CPU, fixed seed, ``num_workers=0``;
    worker processes are reseeded by mmengine as usual).

    ``tools/train.py`` adds it to every run.
    """
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.resumed: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_states'] = get_rng_states()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner._resume and 'rng_states' in checkpoint:
            self.resumed = checkpoint['rng_states']

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if self.resumed is None or not hasattr(loop, 'dataloader_iterator'):
            return
        # IterBasedTrainLoop: after this hook it replays runner.iter batches
        loop.dataloader_iterator = _RestoreBeforeBatch(
            loop.dataloader_iterator, runner.iter, self.resumed)
        self.resumed = None

"""Refuse weights that do not fit the model instead of testing a model that
is partly random (mmengine loads non-strictly and only warns)."""
from typing import Dict

import torch
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


def check_checkpoint_fits(model: torch.nn.Module, state_dict: Dict,
                          path: str) -> None:
    """Raise a ``ValueError`` naming ``path`` when the checkpoint lacks any
    of the model's weights or has them in another shape (a checkpoint of
    another model, another size, or a config typo). Extra keys are allowed
    (e.g. a text model's unused pooler)."""
    sd = {k[7:] if k.startswith('module.') else k: v
          for k, v in state_dict.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    wrong = [f'{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}'
             for k in own if k in sd and hasattr(sd[k], 'shape')
             and tuple(sd[k].shape) != tuple(own[k].shape)]
    if not missing and not wrong:
        return
    found = len(own) - len(missing)
    msg = (f'{path}: these weights do not fit the model '
           f'({type(model).__name__} of the config): {len(missing)} of its '
           f'{len(own)} weights are missing')
    if missing:
        msg += f' (e.g. {", ".join(missing[:3])})'
    if wrong:
        msg += (f', {len(wrong)} have another shape (e.g. '
                f'{"; ".join(wrong[:2])})')
    if found < len(own) // 2:
        msg += '; is it a checkpoint of another model?'
    raise ValueError(msg)


def load_fitting_weights(model: torch.nn.Module, path: str) -> dict:
    """Load ``path`` into ``model`` weights-only, refusing weights that do
    not fit (:func:`check_checkpoint_fits`); returns the checkpoint."""
    from mmengine.runner import CheckpointLoader
    from mmengine.runner.checkpoint import load_state_dict

    from mqformer.compat import checkpoint_io
    with checkpoint_io():  # weights only: a checkpoint cannot run code
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    check_checkpoint_fits(model, state, path)
    load_state_dict(model, state)
    return ckpt


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Runs :func:`check_checkpoint_fits` when the runner loads weights
    (``tools/test.py`` adds it: a test of a partly random model would report
    numbers that mean nothing)."""

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = getattr(runner.model, 'module', runner.model)
        check_checkpoint_fits(model, checkpoint.get('state_dict', checkpoint),
                              str(runner.cfg.get('load_from')))

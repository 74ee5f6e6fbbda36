"""Our attention paths for any mm model, switched on from its config."""
from torch import nn

from mmdet.registry import MODELS
from .deformable_attention import use_cpu_deformable_attention
from .sdpa_attention import use_sdpa_attention


@MODELS.register_module(name='FastAttention')
def build_with_fast_attention(model_type: str,
                              cpu_deformable: bool = True,
                              sdpa: bool = True,
                              **cfg) -> nn.Module:
    """Build the model ``dict(type=model_type, **cfg)`` and give it the
    attention paths MQ-Former runs: :func:`use_cpu_deformable_attention`
    (mmcv's deformable attention; its CUDA kernel is kept on CUDA) and
    :func:`use_sdpa_attention` (mmcv's multi-head attention without the
    weights it drops). Same parameters, state-dict keys and outputs.

    In a config, only ``type`` changes and every other key keeps its path
    (``model.test_cfg...``, ``--cfg-options``), e.g. for mmdet's
    Mask2Former::

        model = dict(type='FastAttention', model_type='Mask2Former', ...)

    so ``MODELS.build(cfg.model)`` returns the converted ``Mask2Former``.
    """
    if model_type == 'FastAttention':
        raise ValueError('FastAttention: model_type must name the model to '
                         "build (e.g. 'Mask2Former'), not FastAttention")
    model = MODELS.build(dict(type=model_type, **cfg))
    if cpu_deformable:
        use_cpu_deformable_attention(model)
    if sdpa:
        use_sdpa_attention(model)
    return model

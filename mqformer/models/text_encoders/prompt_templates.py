"""Prompt templates for class-name texts (free-form phrases are never templated)."""

# A short CLIP-style set; one is drawn per class name per iteration in training and
# all of them are averaged (ensembled) at test time.
DEFAULT_TEMPLATES = (
    'a photo of a {}.',
    'a photo of the {}.',
    'a picture of a {}.',
    'an image of the {}.',
    'a cropped photo of a {}.',
    'a close-up photo of a {}.',
    'a bright photo of the {}.',
    'a dark photo of the {}.',
    'a blurry photo of the {}.',
    'there is a {} in the scene.',
    'a {} in the scene.',
    '{}',
)

TEMPLATE_SETS = dict(default=DEFAULT_TEMPLATES, none=('{}', ))


def get_templates(templates):
    """Resolve ``templates`` (a preset name or a sequence of '{}' strings)."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise KeyError(f'unknown prompt template set {templates!r}; '
                           f'choose from {sorted(TEMPLATE_SETS)} or pass a list')
        return tuple(TEMPLATE_SETS[templates])
    templates = tuple(templates)
    for t in templates:
        if '{}' not in t:
            raise ValueError(f'prompt template {t!r} has no "{{}}" placeholder')
    return templates

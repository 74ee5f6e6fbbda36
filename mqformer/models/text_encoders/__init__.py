from .hf_text_encoder import (CLASS_TEXT, PHRASE_TEXT, HFTextEncoder,
                              resolve_model_path)
from .prompt_templates import DEFAULT_TEMPLATES, get_templates

__all__ = ['HFTextEncoder', 'resolve_model_path', 'get_templates',
           'DEFAULT_TEMPLATES', 'CLASS_TEXT', 'PHRASE_TEXT']

"""Loading Hugging Face checkpoints with a clear error when they are missing."""
import os


def load_pretrained(cls, name_or_path: str):
    """``cls.from_pretrained`` with an error naming the path and the remedy."""
    try:
        return cls.from_pretrained(name_or_path)
    except (OSError, ValueError) as e:
        offline = os.environ.get('HF_HUB_OFFLINE') == '1'
        raise OSError(
            f'cannot load {cls.__name__} from {name_or_path!r}: {e}. Give a '
            'local folder in Hugging Face format or a hub id reachable from '
            'here' + (' (HF_HUB_OFFLINE=1: only the local HF cache is used)'
                      if offline else '')) from e

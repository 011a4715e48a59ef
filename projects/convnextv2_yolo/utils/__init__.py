from .class_names import resolve_class_names
from .paths import get_config_path, repo_root

__all__ = ['get_config_path', 'repo_root', 'resolve_class_names']

from .class_names import as_class_names, resolve_class_names
from .paths import get_config_path, repo_root

__all__ = ['as_class_names', 'get_config_path', 'repo_root', 'resolve_class_names']

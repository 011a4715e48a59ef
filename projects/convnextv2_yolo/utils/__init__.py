from .paths import get_config_path, repo_root

__all__ = ['get_config_path', 'repo_root']

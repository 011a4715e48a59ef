"""Locate the configs/ and tools/ shipped with the package."""
import os.path as osp

_PKG = osp.dirname(osp.dirname(osp.abspath(__file__)))


def repo_root() -> str:
    """Folder holding ``configs/`` and ``tools/``.

    The package's ``.mim`` folder when installed (as OpenMMLab packages do),
    else the source checkout two levels up from the package.
    """
    mim = osp.join(_PKG, '.mim')
    if osp.isdir(osp.join(mim, 'configs')):
        return mim
    return osp.dirname(osp.dirname(_PKG))


def get_config_path(name: str) -> str:
    """Absolute path of a config shipped with the package.

    Args:
        name (str): Path relative to ``configs/``, e.g.
            ``'yolo11/yolo11_n_8xb16-500e_coco.py'``.
    """
    path = osp.join(repo_root(), 'configs', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {name!r} not found under {osp.dirname(path)}')
    return path

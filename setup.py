"""Installs the ``convnextv2_yolo`` package (an MMDetection 3.x extension).

The package lives in ``projects/convnextv2_yolo``. Like OpenMMLab packages, the
``configs/`` and ``tools/`` folders are shipped inside the package under
``convnextv2_yolo/.mim`` (symlinks for an editable install, copies otherwise) so
that ``mim`` and ``convnextv2_yolo.get_config_path`` can find them.
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
PKG_DIR = osp.join('projects', 'convnextv2_yolo')


def get_version() -> str:
    ns: dict = {}
    with open(osp.join(ROOT, PKG_DIR, 'version.py'), encoding='utf-8') as f:
        exec(f.read(), ns)
    return ns['__version__']


def parse_requirements(fname: str) -> list:
    """Read a requirements file, skipping comments and ``-r``/``-c`` lines."""
    reqs = []
    with open(osp.join(ROOT, fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def add_mim_extension() -> None:
    """Put configs/ and tools/ into ``convnextv2_yolo/.mim``.

    Editable/develop installs get symlinks (edits show up at once), regular
    installs and wheels get copies, as in mmdet's own setup.py.
    """
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'install', 'build', 'build_py')):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(ROOT, PKG_DIR, '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools'):
        src = osp.join(ROOT, name)
        dst = osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        else:
            shutil.copytree(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='convnextv2-yolo',
        version=get_version(),
        description='ConvNeXt V2 (FCMAE) backbones under a YOLO11 PAFPN neck '
        'and head, as an MMDetection 3.x extension',
        long_description=open(osp.join(ROOT, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.9',
        package_dir={'convnextv2_yolo': PKG_DIR},
        packages=['convnextv2_yolo'] + [
            'convnextv2_yolo.' + p for p in find_packages(PKG_DIR)
        ],
        include_package_data=True,
        package_data={'convnextv2_yolo': ['.mim/configs/**/*', '.mim/tools/**/*']},
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'dev': parse_requirements('requirements/tests.txt'),
            # ONNX export and ONNX Runtime inference (tools/deployment/export_onnx.py,
            # tools/infer.py --backend onnxruntime); onnxruntime-gpu for CUDA/TensorRT
            'deploy': ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript>=0.5', 'onnxslim>=0.1.50'],
        },
        zip_safe=False,
    )

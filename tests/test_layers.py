"""The package's import layers: no module imports a higher layer (README "Layout", layer order).

Every ``import`` of the package's own modules is read with ``ast`` (those inside functions too).
"""
import ast
import os
import os.path as osp
from typing import Dict, List, Tuple

from tests.helpers.paths import ROOT

PKG = osp.join(ROOT, 'projects', 'convnextv2_yolo')

# lowest first; a module may import its own layer and those below
LAYERS: List[Tuple[str, ...]] = [
    ('version', 'utils', 'structures'),
    ('patches', ),
    ('layers', 'losses', 'task_modules'),
    ('backbones', 'necks', 'dense_heads'),
    ('detectors', 'selfsup'),
    ('datasets', 'evaluation'),
    ('visualization', ),
    ('engine', ),
    ('deployment', 'converters', 'dataset_tools'),
    # the library side of tools/ (command-line set-up, demo, config dumps), and the package itself
    ('utils.launch', 'utils.demo_setup', 'utils.demo_report', 'utils.effective_config', 'utils.readme_results',
     '__init__'),
]
LAYER_OF: Dict[str, int] = {name: i for i, names in enumerate(LAYERS) for name in names}


def layer(module: str) -> int:
    """Layer of a package-relative dotted module name ('' is the package's ``__init__``)."""
    if not module:
        return LAYER_OF['__init__']
    parts = module.split('.')
    for n in range(len(parts), 0, -1):
        key = '.'.join(parts[:n])
        if key in LAYER_OF:
            return LAYER_OF[key]
    raise AssertionError(f'convnextv2_yolo.{module} is in no layer: add its subpackage to LAYERS')


def _is_module(name: str) -> bool:
    """Whether ``convnextv2_yolo.<name>`` is a module or subpackage of the source tree."""
    path = osp.join(PKG, *name.split('.'))
    return osp.isfile(path + '.py') or osp.isdir(path)


def imported_modules(source: str, module: str, is_package: bool = False) -> List[Tuple[int, str]]:
    """(line, package-relative module) of every import of the package in ``source``.

    ``module`` is package-relative ('' for the package's ``__init__``); ``from X import name`` counts as an
    import of ``X.name`` when that is a module, else of ``X``.
    """
    parts = module.split('.') if module else []
    here = ['convnextv2_yolo'] + (parts if is_package else parts[:-1])
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = '.'.join(here[:len(here) - node.level + 1] if node.level else [])
            target = '.'.join(p for p in (base, node.module or '') if p)
            targets = []
            for a in node.names:
                sub = f'{target}.{a.name}'
                inner = sub.split('.', 1)[1] if '.' in sub else ''
                targets.append(sub if sub.startswith('convnextv2_yolo.') and _is_module(inner) else target)
        else:
            continue
        for t in targets:
            if t == 'convnextv2_yolo' or t.startswith('convnextv2_yolo.'):
                found.append((node.lineno, t.split('.', 1)[1] if '.' in t else ''))
    return found


def violations(source: str, module: str, is_package: bool = False) -> List[str]:
    """Imports in ``source`` (module ``module``) of a higher layer."""
    own = layer(module)
    return [f'convnextv2_yolo.{module}:{line} imports convnextv2_yolo.{target} (layer {layer(target)} > {own})'
            for line, target in imported_modules(source, module, is_package) if layer(target) > own]


def package_modules():
    for folder, _, files in os.walk(PKG):
        for f in sorted(files):
            if f.endswith('.py'):
                rel = osp.relpath(osp.join(folder, f), PKG)[:-3].replace(os.sep, '.')
                is_package = f == '__init__.py'
                module = ('' if rel == '__init__' else rel[:-len('.__init__')]) if is_package else rel
                yield osp.join(folder, f), module, is_package


def test_no_module_imports_a_higher_layer():
    found = []
    for path, module, is_package in package_modules():
        with open(path, encoding='utf-8') as f:
            found += violations(f.read(), module, is_package)
    assert not found, 'imports of a higher layer:\n' + '\n'.join(found)


def test_the_check_sees_upward_imports():
    # absolute, relative, lazy (inside a function), and ``from .. import x`` of a module
    assert violations('from convnextv2_yolo.datasets import collate\n', 'layers.conv')
    assert violations('def f():\n    from ..datasets.collate import yolo_collate\n', 'dense_heads.yolo_head')
    assert violations('from .. import engine\n', 'utils.paths')
    assert violations('from ..utils import launch\n', 'engine.runner')
    assert not violations('from ..layers import Conv\nfrom ..utils import checkpoint_io\n', 'dense_heads.x')
    assert not violations('from . import blocks\n', 'layers', is_package=True)
    assert imported_modules('from . import patches\nfrom .utils import get_config_path\n', '', True) == [
        (1, 'patches'), (2, 'utils')]
    assert imported_modules('from ..utils import checkpoint_io\n', 'patches.mmengine_io') == [
        (1, 'utils.checkpoint_io')]


# ---------------------------------------------------------------- tools and tests
def _python_files(*dirs: str) -> List[str]:
    return sorted(osp.join(root, f) for d in dirs for root, _, files in os.walk(osp.join(ROOT, d))
                  for f in files if f.endswith('.py') and 'golden' not in osp.relpath(root, ROOT).split(os.sep)[1:])


def path_hacks(source: str) -> List[str]:
    """``sys.path`` edits and imports by file path (``spec_from_file_location``, ``runpy``, ``SourceFileLoader``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == 'path' and isinstance(node.value, ast.Name) \
                and node.value.id == 'sys':
            found.append(f'sys.path (line {node.lineno})')
        elif isinstance(node, (ast.Attribute, ast.Name)):
            name = node.attr if isinstance(node, ast.Attribute) else node.id
            if name in ('spec_from_file_location', 'SourceFileLoader', 'run_path'):
                found.append(f'{name} (line {node.lineno})')
        elif isinstance(node, ast.ImportFrom) and node.module in ('runpy', 'importlib.util', 'importlib.machinery'):
            found.extend(f'{node.module}.{a.name} (line {node.lineno})' for a in node.names
                         if a.name in ('spec_from_file_location', 'SourceFileLoader', 'run_path'))
    return found


def test_tools_and_tests_import_the_installed_package_only():
    """No tool or test edits ``sys.path`` or imports a file by its path: the package is installed, tools are
    scripts nobody imports, tests import their helpers as ``tests.helpers``."""
    bad = {osp.relpath(p, ROOT): hacks for p in _python_files('tools', 'tests')
           if (hacks := path_hacks(open(p, encoding='utf-8').read()))}
    assert not bad, f'path edits / imports by file path: {bad}'


def test_tests_share_code_through_helpers_only():
    """A test module imports no other test module: shared code lives in ``tests.helpers``."""
    bad = {}
    for p in _python_files('tests'):
        for node in ast.walk(ast.parse(open(p, encoding='utf-8').read())):
            names = [node.module or ''] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            hits = [n for n in names if any(part.startswith('test_') for part in n.split('.'))]
            if hits:
                bad.setdefault(osp.relpath(p, ROOT), []).extend(hits)
    assert not bad, f'test modules imported by other tests (move the shared code to tests/helpers): {bad}'


def test_the_path_check_sees_hacks():
    assert path_hacks('import sys\nsys.path.insert(0, "x")\n') == ['sys.path (line 2)']
    assert path_hacks('import importlib.util as u\nu.spec_from_file_location("m", "f.py")\n')
    assert path_hacks('from runpy import run_path\n')
    assert path_hacks('import os\nos.path.join("a")\n') == []


def test_converter_and_dataset_tools_are_thin():
    """The converters and dataset tools are command lines over package modules (argument parsing, printing)."""
    thin = ['tools/model_converters/ultralytics_to_mmdet.py', 'tools/model_converters/convnextv2_to_mmdet.py',
            'tools/misc/check_dataset.py', 'tools/dataset_converters/yolo2coco.py',
            'tools/dataset_converters/coco2yolo.py']
    sizes = {p: sum(1 for _ in open(osp.join(ROOT, p), encoding='utf-8')) for p in thin}
    assert all(n <= 200 for n in sizes.values()), sizes

"""The effective config: a config with every default of the classes it builds written out.

A config dump (``Config.pretty_text``) shows what the config files say, not what the built modules
do: a parameter the config leaves out takes its code default, and a changed default changes the
recipe without any config changing (the demo lost 0.084 mAP that way once; issue 18). The
effective config closes that gap: every ``dict(type=...)`` the runner will build (the model and
its parts, assigners, datasets and pipelines, hooks, optimizer wrapper and optimizer, schedulers,
loops, evaluators, visualizer, log processor) is completed with the defaults of its registered
class's constructor, marked as such. ``tools/misc/print_config.py --with-defaults`` prints it;
``configs/_snapshots/`` holds it for every shipped config and ``tests/configs/test_config_snapshots.py``
fails when a config or a default moves without its snapshot (``tools/misc/print_config.py
--update-snapshots`` rewrites them).

Which registry builds a dict follows from where it sits (mmengine's runner and mmdet's builders):
``model`` -> MODELS (assigners, coders, prior generators -> TASK_UTILS), ``*_dataloader.dataset``
-> DATASETS (``pipeline`` -> TRANSFORMS), ``sampler`` -> DATA_SAMPLERS, ``collate_fn`` ->
FUNCTIONS, hooks -> HOOKS (``switch_pipeline`` -> TRANSFORMS; an ``EMAHook``'s ``ema_type`` ->
MODELS), ``optim_wrapper`` -> OPTIM_WRAPPERS (``optimizer`` -> OPTIMIZERS), ``param_scheduler`` ->
PARAM_SCHEDULERS, ``train_cfg``/``val_cfg``/``test_cfg`` -> LOOPS, evaluators -> METRICS,
``visualizer`` -> VISUALIZERS (``vis_backends`` -> VISBACKENDS), ``log_processor`` ->
LOG_PROCESSORS. A type no registry knows (e.g. ``nms=dict(type='nms')``, read by our head) is
left as written.
"""
import inspect
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

# top-level config key -> registry name of the dict(s) it holds
_TOP = {'model': 'MODELS', 'custom_hooks': 'HOOKS', 'default_hooks': 'HOOKS', 'optim_wrapper': 'OPTIM_WRAPPERS',
        'param_scheduler': 'PARAM_SCHEDULERS', 'train_cfg': 'LOOPS', 'val_cfg': 'LOOPS', 'test_cfg': 'LOOPS',
        'val_evaluator': 'METRICS', 'test_evaluator': 'METRICS', 'visualizer': 'VISUALIZERS',
        'log_processor': 'LOG_PROCESSORS'}
# (registry of the parent, key) -> registry of the child; None parent: any
_CHILD = {('MODELS', 'assigner'): 'TASK_UTILS', ('MODELS', 'bbox_coder'): 'TASK_UTILS',
          ('MODELS', 'prior_generator'): 'TASK_UTILS', ('MODELS', 'sampler'): 'TASK_UTILS',
          ('MODELS', 'iou_calculator'): 'TASK_UTILS', ('TASK_UTILS', 'iou_calculator'): 'TASK_UTILS',
          ('DATASETS', 'pipeline'): 'TRANSFORMS', ('DATASETS', 'dataset'): 'DATASETS',
          ('TRANSFORMS', 'transforms'): 'TRANSFORMS', ('HOOKS', 'switch_pipeline'): 'TRANSFORMS',
          ('OPTIM_WRAPPERS', 'optimizer'): 'OPTIMIZERS', ('VISUALIZERS', 'vis_backends'): 'VISBACKENDS',
          (None, 'init_cfg'): None}  # weight-init specs: kept as written
_LOADER = {'dataset': 'DATASETS', 'sampler': 'DATA_SAMPLERS', 'batch_sampler': 'DATA_SAMPLERS',
           'collate_fn': 'FUNCTIONS'}


class CodeDefault:
    """A value the config does not write: the default of the class's constructor."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, CodeDefault) and self.value == other.value

    def __repr__(self) -> str:
        return f'CodeDefault({self.value!r})'


def _registries() -> Dict[str, Any]:
    import mmdet.registry as reg
    from mmengine.registry import FUNCTIONS
    names = ['MODELS', 'TASK_UTILS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'HOOKS', 'OPTIM_WRAPPERS',
             'OPTIMIZERS', 'PARAM_SCHEDULERS', 'LOOPS', 'METRICS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS']
    out = {n: getattr(reg, n) for n in names}
    out['FUNCTIONS'] = FUNCTIONS
    return out


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v) for k, v in value.items())
    return False


def constructor_defaults(obj: Any, skip: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """The literal defaults (numbers, strings, None, containers of them) of ``obj``'s constructor.

    For a class whose ``__init__`` passes ``**kwargs`` on, the defaults of the base classes'
    constructors follow (along the MRO, until one takes no ``**kwargs``), as those apply too.

    Args:
        obj: A class or a function.
        skip (tuple[str]): Parameter names to leave out.

    Returns:
        dict: name -> default; parameters without a default, ``*args``, ``**kwargs`` and
        non-literal defaults (objects, functions) are left out.
    """
    funcs = [c.__dict__['__init__'] for c in obj.__mro__ if '__init__' in c.__dict__] \
        if inspect.isclass(obj) else [obj]
    out: Dict[str, Any] = {}
    for func in funcs:
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):  # builtins without a signature
            break
        for p in params:
            if (p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty
                    and p.name not in skip and p.name not in out and _is_literal(p.default)):
                out[p.name] = p.default
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out


class _Completer:
    def __init__(self) -> None:
        self.registries = _registries()

    def lookup(self, registry: Optional[str], type_name: Any) -> Any:
        if registry is None or not isinstance(type_name, str):
            return None
        try:
            return self.registries[registry].get(type_name)
        except KeyError:  # an unknown scope prefix
            return None

    def node(self, value: Any, registry: Optional[str]) -> Any:
        """``value`` completed when it is a dict (or a list of dicts) built by ``registry``."""
        if isinstance(value, (list, tuple)):
            out = [self.node(v, registry) for v in value]
            return out if isinstance(value, list) else tuple(out)
        if not isinstance(value, dict):
            return value
        obj = self.lookup(registry, value.get('type'))
        out = {k: self.child(k, v, registry) for k, v in value.items()}
        if obj is None:
            return out
        for name, default in constructor_defaults(obj, skip=('type',)).items():
            if name not in out:
                out[name] = CodeDefault(self.child(name, default, registry))
        ema_type = out.get('ema_type')
        ema = self.lookup('MODELS', ema_type.value if isinstance(ema_type, CodeDefault) else ema_type)
        if ema is not None and registry == 'HOOKS':  # mmengine's EMAHook passes the rest to the averaged model
            for name, default in constructor_defaults(ema, skip=('model', 'device')).items():
                if name not in out:
                    out[name] = CodeDefault(default)
        return out

    def child(self, key: str, value: Any, registry: Optional[str]) -> Any:
        for parent in (registry, None):
            if (parent, key) in _CHILD:
                return self.node(value, _CHILD[parent, key])
        return self.node(value, registry)

    def config(self, cfg: dict) -> dict:
        out = {}
        for key, value in cfg.items():
            if key in _TOP:
                out[key] = self.node(value, _TOP[key])
            elif key.endswith('_dataloader') and isinstance(value, dict):
                out[key] = {k: self.node(v, _LOADER.get(k)) for k, v in value.items()}
            else:
                out[key] = value
        if 'runner_type' not in out:
            out['runner_type'] = CodeDefault('Runner')
        return out


def effective_config(cfg) -> dict:
    """The config as plain data, every built dict completed with its class's constructor defaults.

    Args:
        cfg (mmengine.Config | dict): A loaded config (``custom_imports`` already imported, so
            that our classes are registered: ``import convnextv2_yolo`` does it).

    Returns:
        dict: The config's keys; inside, defaults the config does not write are
        :class:`CodeDefault` instances (:func:`format_effective_config` marks them).
    """
    import convnextv2_yolo  # noqa: F401  (our registrations)
    data = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    data.pop('filename', None)
    return _Completer().config(data)


def _fmt(value: Any, indent: int, root: Optional[str]) -> str:
    pad = ' ' * (indent + 4)
    if isinstance(value, CodeDefault):
        return _fmt(value.value, indent, root)
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (k != 'type', str(k)))
        if not keys:
            return 'dict()'
        named = all(isinstance(k, str) and k.isidentifier() for k in keys)  # dict(a=1), else {'a.b': 1}
        lines = []
        for k in keys:
            v = value[k]
            mark = '  # default' if isinstance(v, CodeDefault) else ''
            lines.append(
                f'{pad}{k if named else repr(k) + ": "}{"=" if named else ""}{_fmt(v, indent + 4, root)},{mark}')
        open_, close = ('dict(', ')') if named else ('{', '}')
        return open_ + '\n' + '\n'.join(lines) + '\n' + ' ' * indent + close
    if isinstance(value, (list, tuple)):
        open_, close = ('[', ']') if isinstance(value, list) else ('(', ')')
        items = [_fmt(v, indent + 4, root) for v in value]
        one_line = open_ + ', '.join(items) + (',' if isinstance(value, tuple) and len(items) == 1 else '') + close
        if len(one_line) + indent <= 100 and '\n' not in one_line:
            return one_line
        return open_ + '\n' + ''.join(f'{pad}{i},\n' for i in items) + ' ' * indent + close
    if isinstance(value, str) and root and root in value:
        value = value.replace(root, '<repo>')
    return repr(value)


def format_effective_config(effective: dict, root: Optional[str] = None) -> str:
    """Python-like text of :func:`effective_config`'s result, one ``key = value`` per top-level key.

    Keys are sorted (``type`` first), code defaults end with ``# default``, and ``root`` (e.g. the
    repository folder) in strings is written ``<repo>``, so the text is the same on every machine.
    """
    return ''.join(
        f'{k} = {_fmt(effective[k], 0, root)}{"  # default" if isinstance(effective[k], CodeDefault) else ""}\n'
        for k in sorted(effective))


# ------------------------------------------------------------------------------------ snapshots

def snapshot_dir(root: str) -> str:
    """Where the snapshots of ``root``'s ``configs/`` live: ``configs/_snapshots/``."""
    return osp.join(root, 'configs', '_snapshots')


def shipped_configs(root: str) -> List[str]:
    """Every config under ``root/configs`` that is not a base or a snapshot, sorted (relative paths)."""
    import glob
    base = osp.join(root, 'configs')
    paths = glob.glob(osp.join(base, '**', '*.py'), recursive=True)
    return sorted(
        osp.relpath(p, base) for p in paths
        if not any(part.startswith('_') and part.endswith('_') for part in osp.relpath(p, base).split(osp.sep))
        and '_snapshots' not in osp.relpath(p, base).split(osp.sep))


def snapshot_text(root: str, rel: str) -> str:
    """The snapshot of ``configs/<rel>``: a header and its effective config."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(root, 'configs', rel))
    header = (f'# Effective config of configs/{rel}: every built dict completed with the code defaults it\n'
              f'# relies on ("# default"). Written by tools/misc/print_config.py --update-snapshots; a test\n'
              f'# fails when the config or a default changes without this file.\n')
    return header + format_effective_config(effective_config(cfg), root=osp.abspath(root))


def snapshot_file(root: str, rel: str) -> str:
    return osp.join(snapshot_dir(root), osp.splitext(rel)[0] + '.txt')

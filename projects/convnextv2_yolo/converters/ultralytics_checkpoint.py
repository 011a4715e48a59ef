"""The weights and metadata of a reference (Ultralytics) checkpoint file.

Reads a plain state dict with the reference's names or a pickled model (via
:mod:`.restricted_unpickler`); parameters and buffers are collected from the
stand-ins' ``_parameters`` / ``_buffers`` / ``_modules``. The EMA weights are
used when the file has them (as the reference does).
"""
from collections import OrderedDict
from typing import Any, Mapping, Tuple

import torch

from .errors import ConversionError
from .restricted_unpickler import read_pickled_file


def collect_tensors(module: Any, prefix: str = '') -> 'OrderedDict[str, torch.Tensor]':
    """Flat state dict (dotted names) of an unpickled module tree.

    Works on :class:`InertObject` stand-ins as well as real ``nn.Module``\\ s:
    it reads ``_parameters``, persistent ``_buffers`` and ``_modules``.
    """
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    attrs = vars(module)
    non_persistent = attrs.get('_non_persistent_buffers_set') or set()
    for kind in ('_parameters', '_buffers'):
        for name, value in (attrs.get(kind) or {}).items():
            if value is None or (kind == '_buffers' and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise ConversionError(f'{prefix}{name} is a {type(value).__name__}, not a tensor')
            out[prefix + name] = value.detach()
    for name, child in (attrs.get('_modules') or {}).items():
        if child is not None:
            out.update(collect_tensors(child, f'{prefix}{name}.'))
    return out


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def load_reference_checkpoint(path: str) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Reference-named state dict (fp32) and metadata of a reference file.

    Args:
        path (str): A plain state dict file or a released/trained ``.pt``.

    Returns:
        tuple: ``(state_dict, info)``, ``info`` holding what the file says
        about itself (``names``, ``version``, ``source_entry``) when present,
        and, when the tensors come from a pickled model (not a plain state
        dict), ``model``: that model's inert stand-in tree, for
        :func:`check_layer_sequence` / :func:`architecture_mismatches`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConversionError: Unreadable or unsafe file, or no weights in it.
    """
    obj = read_pickled_file(path)
    info: dict = {}
    if _is_state_dict(obj):
        sd, info['source_entry'] = obj, 'state_dict'
    elif isinstance(obj, Mapping):
        entry = 'ema' if obj.get('ema') is not None else 'model'
        if obj.get(entry) is None:
            nested = obj.get('state_dict')
            if _is_state_dict(nested):
                sd, entry = nested, 'state_dict'
            else:
                raise ConversionError(f"{path}: no 'model', 'ema' or 'state_dict' entry "
                                      f'(keys: {sorted(map(str, obj))[:10]})')
        else:
            model = obj[entry]
            if not (_is_state_dict(model) or '_modules' in getattr(model, '__dict__', {})):
                raise ConversionError(f"{path}: entry '{entry}' is a {type(model).__name__}, neither a "
                                      'model nor a state dict')
            if _is_state_dict(model):
                sd = model
            else:
                sd, info['model'] = collect_tensors(model), model
            names = vars(model).get('names') if hasattr(model, '__dict__') else None
            if isinstance(names, Mapping):
                info['names'] = [str(names[k]) for k in sorted(names)]
            elif isinstance(names, (list, tuple)):
                info['names'] = [str(n) for n in names]
        info['source_entry'] = entry
        if isinstance(obj.get('version'), str):
            info['version'] = obj['version']
    elif hasattr(obj, '__dict__') and '_modules' in vars(obj):
        sd, info['source_entry'], info['model'] = collect_tensors(obj), 'model', obj
    else:
        raise ConversionError(f'{path}: holds a {type(obj).__name__}, not a reference checkpoint')
    if not sd:
        raise ConversionError(f'{path}: no tensors found')
    state = OrderedDict(
        (k, v.float() if v.is_floating_point() else v.clone()) for k, v in sd.items())
    return state, info

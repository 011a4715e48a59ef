"""Checkpoint and file I/O: safe ``torch.load`` with clear errors, atomic writes.

This is the one place the package reads checkpoints (:func:`safe_torch_load`,
also used by mmengine's local loader through
:func:`convnextv2_yolo.patches.mmengine_checkpoint.register_safe_local_loader`)
and writes files whole-or-not-at-all (:func:`write_atomic`, also behind
mmengine's ``LocalBackend.put`` through
:func:`convnextv2_yolo.patches.mmengine_io.atomic_local_writes`).
"""
import contextlib
import os
import os.path as osp
import pickle
import struct
import uuid
import zipfile
from typing import Any, List, Optional, Set, Tuple, Union

import torch

TRUST_ENV = 'CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS'


class CheckpointLoadError(RuntimeError):
    """A checkpoint file could not be loaded (corrupt, truncated or unsafe)."""


def trusted_checkpoints() -> Set[str]:
    """Real paths listed in ``$CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS`` (os.pathsep-separated)."""
    value = os.environ.get(TRUST_ENV, '')
    return {osp.realpath(osp.expanduser(p)) for p in value.split(os.pathsep) if p}


def safe_torch_load(filename: str, map_location: Optional[Any] = None, mmap: bool = False) -> Any:
    """``torch.load`` with safe loading and errors that name the file.

    A file listed in ``$CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS`` is loaded with full
    unpickling (only do that for files you produced or trust).

    Args:
        filename (str): Local checkpoint file (``~`` is expanded).
        map_location (optional): As :func:`torch.load`.
        mmap (bool): Memory-map the tensors (zip-format files only).

    Returns:
        Any: The loaded object.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointLoadError: the file is corrupt/truncated or holds objects
            outside the allow-list.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    trusted = osp.realpath(filename) in trusted_checkpoints()
    try:
        return torch.load(filename, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as e:
        if 'Unsupported global' in str(e) or 'GLOBAL' in str(e):
            raise CheckpointLoadError(
                f'refusing to load {filename}: it holds pickled objects that safe loading '
                f'(torch.load(weights_only=True)) does not allow ({_first_line_with(str(e), "GLOBAL")}). '
                f'If you produced this file '
                f'yourself (e.g. an older mmengine checkpoint), trust it explicitly with '
                f'{TRUST_ENV}={filename}') from None
        raise _corrupt(filename, _first_line_with(str(e), 'error')) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        msg = str(e)
        if isinstance(e, (EOFError, OSError, zipfile.BadZipFile, UnicodeDecodeError)) or any(
                s in msg for s in ('zip archive', 'PytorchStreamReader', 'Ran out of input',
                                   'invalid load key', 'file not found in archive')):
            raise _corrupt(filename, msg.splitlines()[0] if msg else type(e).__name__) from None
        raise
    except (IndexError, KeyError, TypeError, AssertionError, AttributeError, struct.error) as e:
        # random bytes that pass as a legacy pickle stream fail inside the unpickler
        raise _corrupt(filename, f'{type(e).__name__}: {e}') from None


def load_checkpoint_mmap(filename: str) -> Any:
    """A checkpoint loaded safely with its tensors memory-mapped (not read until used).

    Files in torch's legacy (non-zip) format cannot be mapped and are read whole.

    Raises: as :func:`safe_torch_load`.
    """
    try:
        return safe_torch_load(filename, map_location='cpu', mmap=True)
    except RuntimeError as e:
        if 'mmap can only be used' not in str(e):  # a file in torch's legacy format: read it whole
            raise
        return safe_torch_load(filename, map_location='cpu')


def read_checkpoint_meta(filename: str) -> dict:
    """A checkpoint's ``meta`` (e.g. ``dataset_meta``), memory-mapping the file so its tensors are not read.

    Raises: as :func:`safe_torch_load`.
    """
    checkpoint = load_checkpoint_mmap(filename)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return meta if isinstance(meta, dict) else {}


def resumable_checkpoints(work_dir: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest checkpoint of ``work_dir`` that loads, for ``--resume`` (auto); and those skipped.

    Candidates: the file named in ``work_dir/last_checkpoint`` (mmengine's pointer), then every
    ``*.pth`` directly in ``work_dir``, newest first (modification time). The first that opens
    (:func:`load_checkpoint_mmap`: the zip index, the pickled structure) and holds a ``state_dict`` and
    ``meta`` with ``epoch`` and ``iter`` is returned. A truncated or unreadable one (a kill during a
    non-atomic copy, a full disk) is skipped.

    Returns:
        tuple: (path or None when none loads, [(skipped path, reason), ...] in the order tried).
    """
    candidates: List[str] = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8', errors='replace') as f:
            named = f.read().strip()
        if named:
            candidates.append(named if osp.isabs(named) else osp.join(work_dir, osp.basename(named)))
    found = [osp.join(work_dir, n) for n in os.listdir(work_dir) if n.endswith('.pth')] if osp.isdir(work_dir) else []
    candidates += sorted(found, key=lambda p: osp.getmtime(p), reverse=True)
    skipped: List[Tuple[str, str]] = []
    seen: Set[str] = set()
    for path in candidates:
        real = osp.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        if not osp.isfile(path):
            skipped.append((path, 'missing'))
            continue
        try:
            checkpoint = load_checkpoint_mmap(path)
        except (CheckpointLoadError, OSError, RuntimeError) as e:
            skipped.append((path, str(e).splitlines()[0] if str(e) else type(e).__name__))
            continue
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
        if not isinstance(meta, dict) or not {'epoch', 'iter'} <= set(meta) or 'state_dict' not in checkpoint:
            skipped.append((path, 'not a training checkpoint (no state_dict, or no meta epoch/iter)'))
            continue
        return path, skipped
    return None, skipped


def _corrupt(filename: str, detail: str) -> CheckpointLoadError:
    return CheckpointLoadError(f'{filename} is not a valid checkpoint (corrupt or truncated): {detail}')


def _first_line_with(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle in line:
            return line.strip()
    return text.splitlines()[0] if text else ''


def write_atomic(filepath: Union[str, os.PathLike], data: Union[bytes, str], encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``filepath`` so that readers see the old or the new file, never a part.

    The bytes go to a hidden temporary file in the same folder, are flushed to
    disk, and the file is renamed over ``filepath`` (``os.replace`` is atomic
    on one file system). A failure or kill before the rename leaves the
    previous file untouched (and at worst a ``.<name>.<pid>.<id>.tmp`` file).

    Args:
        filepath (str | os.PathLike): Destination; its folder is created.
        data (bytes | str): The content; ``str`` is encoded with ``encoding``.
        encoding (str): Encoding of a ``str`` ``data``.
    """
    filepath = os.fspath(filepath)
    folder = osp.dirname(filepath) or '.'
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    payload = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, 'xb') as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

"""mmengine's file writes and ``CheckpointHook`` removals, made safe against a kill mid-save."""
import os
from typing import Any, List, Union

from ..utils import checkpoint_io
from ._util import replace


def atomic_local_writes() -> None:
    """Make mmengine's ``LocalBackend.put`` / ``put_text`` (checkpoints, json logs) atomic.

    Upstream defect: ``mmengine.fileio.backends.LocalBackend.put`` (0.10.7)
    opens the final path with ``'wb'`` and writes in place, so a kill (or an
    error) mid-write leaves a truncated checkpoint under its final name, which
    a later ``--resume`` picks up. Writes now go through
    :func:`~convnextv2_yolo.utils.checkpoint_io.write_atomic` (temporary file in
    the same folder, fsync, ``os.replace``).

    Applies to: mmengine 0.10.x.
    """
    from mmengine.fileio.backends.local_backend import LocalBackend

    def make_put(original):
        def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
            checkpoint_io.write_atomic(filepath, obj)  # looked up per call: tests may wrap it
        return put

    def make_put_text(original):
        def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
            checkpoint_io.write_atomic(filepath, obj, encoding=encoding)
        return put_text

    replace(LocalBackend, 'put', make_put)
    replace(LocalBackend, 'put_text', make_put_text)


class _DeferredRemovals:
    """File-backend proxy that records ``remove``/``rmtree`` calls instead of running them."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.pending: List[tuple] = []

    def remove(self, filepath: str) -> None:
        self.pending.append((self._backend.remove, filepath))

    def rmtree(self, dir_path: str) -> None:
        self.pending.append((self._backend.rmtree, dir_path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def remove_old_checkpoints_after_saving() -> None:
    """Run ``CheckpointHook``'s removals of old/best checkpoints after the new one is written.

    Upstream defect: ``mmengine.hooks.CheckpointHook._save_checkpoint_with_step``
    removes the oldest kept checkpoint (``max_keep_ckpts``) and
    ``_save_best_checkpoint`` removes the previous best *before* saving the new
    one (0.10.7), so a kill during the save leaves no best (or one checkpoint
    fewer) on disk. The removals are recorded during the save and run once the
    new files are in place, never on a file just written under the same name.

    Applies to: mmengine 0.10.x.
    """
    from mmengine.hooks import CheckpointHook

    def make_save_then_remove(original):
        def save_then_remove(self, runner, *args, **kwargs):
            backend = getattr(self, 'file_backend', None)  # set in before_train
            if backend is None:
                return original(self, runner, *args, **kwargs)
            proxy = _DeferredRemovals(backend)
            self.file_backend = proxy
            try:
                result = original(self, runner, *args, **kwargs)
            finally:
                self.file_backend = backend
            # the new files are in place: now drop the old ones (never a file
            # that was just written under the same name)
            current = {getattr(self, 'last_ckpt', None), getattr(self, 'best_ckpt_path', None),
                       *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()}
            for remove, path in proxy.pending:
                if path not in current:
                    remove(path)
            return result
        return save_then_remove

    for name in ('_save_checkpoint_with_step', '_save_best_checkpoint'):
        replace(CheckpointHook, name, make_save_then_remove)

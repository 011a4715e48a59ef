"""mmengine's ``CheckpointHook`` that survives a failed write (a full disk) and can also save every N iterations."""
import copy
import logging
import os.path as osp
import shutil

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

ON_SAVE_ERROR = ('continue', 'stop')


def free_space(path: str) -> str:
    """Free space of the file system holding ``path`` (or its nearest existing parent), e.g. ``'12.3 MiB'``."""
    while path and not osp.exists(path):
        parent = osp.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        free = shutil.disk_usage(path or '.').free
    except OSError as e:
        return f'unknown ({e})'
    return f'{free / 2**20:.1f} MiB'


@HOOKS.register_module()
class YOLOCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (all its arguments) plus a safe failure mode and iteration checkpoints.

    - A checkpoint that cannot be written (``OSError``: a full disk, ``ENOSPC``; a vanished or read-only
      folder) is logged as an error naming the file, the error and the free space left; the previous
      checkpoints stay on disk (mmengine's removal of the oldest / previous best runs only after a
      successful write, see ``patches/mmengine_io.py``), the hook's record of the kept checkpoints, the
      last checkpoint and the best score are restored, and training goes on to the next interval
      (``on_save_error='continue'``) or stops with a ``RuntimeError`` (``'stop'``).
    - ``iter_interval=N`` also saves ``iter_{n}.pth`` every N training iterations (``n`` the global
      iteration, inside an epoch too), keeping the newest ``max_keep_iter_ckpts``, and points
      ``last_checkpoint`` at it, so ``--resume`` loses at most N iterations.

    Args:
        on_save_error (str): ``'continue'`` or ``'stop'``. Defaults to ``'continue'``.
        iter_interval (int): Iterations between iteration checkpoints; 0: none. Defaults to 0.
        max_keep_iter_ckpts (int): Iteration checkpoints kept (the newest). Defaults to 1.
        **kwargs: ``CheckpointHook``'s arguments.

    Raises:
        ValueError: ``on_save_error`` not one of ``ON_SAVE_ERROR``; a negative interval or keep count.
    """

    def __init__(self, *args, on_save_error: str = 'continue', iter_interval: int = 0,
                 max_keep_iter_ckpts: int = 1, **kwargs) -> None:
        if on_save_error not in ON_SAVE_ERROR:
            raise ValueError(f'YOLOCheckpointHook: on_save_error must be one of {ON_SAVE_ERROR}, got {on_save_error!r}')
        if int(iter_interval) < 0 or int(max_keep_iter_ckpts) < 1:
            raise ValueError(f'YOLOCheckpointHook: iter_interval >= 0 and max_keep_iter_ckpts >= 1, got '
                             f'{iter_interval} and {max_keep_iter_ckpts}')
        super().__init__(*args, **kwargs)
        self.on_save_error = on_save_error
        self.iter_interval = int(iter_interval)
        self.max_keep_iter_ckpts = int(max_keep_iter_ckpts)
        self._iter_ckpts = []

    # ------------------------------------------------------------------ failure-safe saving
    @staticmethod
    def _hub_key(key: str) -> bool:
        """The message-hub entries the save bookkeeping writes."""
        return key in ('last_ckpt', 'keep_ckpt_ids') or key.startswith(('best_score', 'best_ckpt'))

    def _state(self, runner) -> dict:
        hub = runner.message_hub.runtime_info
        attrs = ('keep_ckpt_ids', 'last_ckpt', 'best_ckpt_path', 'best_ckpt_path_dict')
        return dict(attrs={k: copy.deepcopy(getattr(self, k)) for k in attrs if hasattr(self, k)},
                    hub={k: copy.deepcopy(v) for k, v in hub.items() if self._hub_key(k)})

    def _restore(self, runner, state: dict) -> None:
        for k, v in state['attrs'].items():
            setattr(self, k, v)
        hub = runner.message_hub
        for k in [k for k in hub.runtime_info if self._hub_key(k) and k not in state['hub']]:
            hub.runtime_info.pop(k)
        for k, v in state['hub'].items():
            hub.update_info(k, v)

    def _guarded(self, runner, what: str, path: str, save) -> bool:
        """Run ``save``; on ``OSError`` restore the hook's state, log, and continue or stop. True: saved."""
        state = self._state(runner)
        try:
            save()
            return True
        except OSError as e:
            self._restore(runner, state)
            kept = getattr(self, 'last_ckpt', None)
            msg = (f'{what} {path} could not be written ({type(e).__name__}: {e}); {free_space(path)} free there; '
                   f'the previous checkpoints are kept (latest: {kept or "none"})')
            if self.on_save_error == 'stop':
                raise RuntimeError(msg + " (on_save_error='stop')") from e
            print_log(msg + '; training goes on to the next checkpoint interval', logger='current',
                      level=logging.ERROR)
            return False

    def _save_checkpoint_with_step(self, runner, step, meta):
        path = osp.join(self.out_dir, self.filename_tmpl.format(step))
        self._guarded(runner, 'checkpoint', path,
                      lambda: super(YOLOCheckpointHook, self)._save_checkpoint_with_step(runner, step, meta))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        self._guarded(runner, 'best checkpoint', self.out_dir,
                      lambda: super(YOLOCheckpointHook, self)._save_best_checkpoint(runner, metrics))

    # ------------------------------------------------------------------ iteration checkpoints
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if not self.by_epoch or not self.iter_interval or (runner.iter + 1) % self.iter_interval:
            return
        step = runner.iter + 1
        name = f'iter_{step}.pth'
        path = osp.join(self.out_dir, name)

        def save():
            runner.save_checkpoint(self.out_dir, name, self.file_client_args, save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler,
                                   meta=dict(epoch=runner.epoch, iter=step), by_epoch=False,
                                   backend_args=self.backend_args, **self.args)
            self.last_ckpt = path
            runner.message_hub.update_info('last_ckpt', path)
            if is_main_process():
                with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                    f.write(path)

        if self._guarded(runner, 'iteration checkpoint', path, save) and is_main_process():
            self._iter_ckpts.append(path)
            while len(self._iter_ckpts) > self.max_keep_iter_ckpts:
                old = self._iter_ckpts.pop(0)
                if old != path and osp.isfile(old):
                    self.file_backend.remove(old)

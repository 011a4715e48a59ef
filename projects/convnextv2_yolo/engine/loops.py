"""mmengine's epoch loop, resumable inside an epoch with the data state of an uninterrupted run."""
import logging
from typing import Any, Dict, Optional

from mmdet.registry import LOOPS
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import BatchSampler, DataLoader, Sampler

from ..datasets.data_state import capture_data_state, capture_rng, restore_data_state, restore_rng


class _SkipFirst(Sampler):
    """``sampler`` without its first ``skip`` items (one pass)."""

    def __init__(self, sampler, skip: int) -> None:
        self.sampler, self.skip = sampler, int(skip)

    def __iter__(self):
        for i, item in enumerate(self.sampler):
            if i >= self.skip:
                yield item

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


def _inner_dataset(dataset):
    while hasattr(dataset, 'dataset') and not hasattr(dataset, 'pipeline'):
        dataset = dataset.dataset
    return dataset


@LOOPS.register_module()
class YOLOEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` whose checkpoints resume exactly, also from inside an epoch.

    Everything a batch depends on is kept with a checkpoint (:meth:`resume_state`, written into its
    ``meta['resume_state']`` by ``YOLORunner.save_checkpoint``): the number of batches done in the
    epoch, the main process's random states and, per data-loader worker, its random states and mosaic
    buffers as of its last batch consumed (without workers: the main process's mosaic buffers).
    ``YOLORunner.resume`` hands it back; the resumed epoch then skips the batches done (the sampler's
    order is a function of the seed and the epoch) instead of restarting the epoch, each new worker
    takes the state of the worker that would have made its next batch (PyTorch gives batches to
    workers round-robin from worker 0 every epoch), and the main random states are restored once the
    epoch's loader iterator exists. Model, EMA, optimizer, schedulers and counters come back through
    mmengine's checkpoint as before.

    With ``randomness.seed`` and ``deterministic=True``, a run interrupted at any iteration and resumed
    ends with the weights of an uninterrupted one (tests/engine/test_exact_resume.py). Not covered:
    random numbers drawn between an epoch's end and the next epoch's first batch by something other
    than this loop (a validation draws one torch number for its loader's base seed; models with drop
    path would then differ after resuming from an epoch checkpoint written before a validation).

    Args: as ``EpochBasedTrainLoop``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._batches_done = 0
        self._worker_states: Dict[int, dict] = {}
        self._pending: Optional[dict] = None
        self._dataset = _inner_dataset(self.dataloader.dataset)
        self._dataset.track_data_state = self.dataloader.num_workers > 0

    # ------------------------------------------------------------------ checkpoint state
    def resume_state(self) -> Dict[str, Any]:
        """What :meth:`load_resume_state` needs to continue exactly after the last finished iteration."""
        state = dict(batches_done=self._batches_done, num_workers=self.dataloader.num_workers,
                     worker_states={int(k): v for k, v in self._worker_states.items()}, rng=capture_rng())
        if self.dataloader.num_workers == 0:
            state['data'] = capture_data_state(self._dataset)
        # inside a gradient-accumulation window: the gradients summed so far (the optimizer steps on them later)
        grads = {name: p.grad.detach().cpu().clone() for name, p in self._model().named_parameters()
                 if p.grad is not None}
        if grads:
            state['grads'] = grads
        last_update = getattr(self.runner.optim_wrapper, '_last_update_count', None)  # YOLOGradAccumulation
        if last_update is not None:
            state['last_update_count'] = int(last_update)
        return state

    def _model(self):
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _restore_grads(self, grads: Optional[dict]) -> None:
        for name, p in self._model().named_parameters():
            p.grad = grads[name].to(device=p.device, dtype=p.dtype) if grads and name in grads else None

    def load_resume_state(self, state: Optional[dict]) -> None:
        """Take a checkpoint's ``meta['resume_state']`` (None: resume as mmengine does, from an epoch start)."""
        if state is None:
            return
        if int(state.get('num_workers', -1)) != self.dataloader.num_workers:
            print_log(f"--resume: the checkpoint was written with {state.get('num_workers')} data-loader workers, "
                      f'this run has {self.dataloader.num_workers}: the data (augmentations) will not repeat the '
                      'interrupted run exactly', logger='current', level=logging.WARNING)
            state = dict(state, worker_states={}, data=None)
        self._pending = state

    # ------------------------------------------------------------------ the epoch
    def _epoch_loader(self, skip_batches: int) -> DataLoader:
        """The train loader, or for a resumed epoch a loader of the same settings without its first batches."""
        loader = self.dataloader
        if not skip_batches:
            return loader
        batch_sampler = loader.batch_sampler
        if type(batch_sampler) is BatchSampler and batch_sampler.sampler is loader.sampler:
            kwargs = dict(batch_size=loader.batch_size, drop_last=loader.drop_last,
                          sampler=_SkipFirst(loader.sampler, skip_batches * loader.batch_size))
        else:
            kwargs = dict(batch_sampler=_SkipFirst(batch_sampler, skip_batches))
        return DataLoader(loader.dataset, num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                          pin_memory=loader.pin_memory, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                          prefetch_factor=loader.prefetch_factor if loader.num_workers else None,
                          persistent_workers=False, generator=loader.generator, **kwargs)

    def _prepare_workers(self, first_batch: int) -> None:
        """Leave each new worker the state of the one that would have made its next batch."""
        n = self.dataloader.num_workers
        if not n:
            return
        pending = {}
        for i in range(n):  # new worker i makes batches first_batch + i (mod n): old worker (first_batch + i) % n's
            old = (first_batch + i) % n
            if old in self._worker_states:
                pending[i] = self._worker_states[old]
            elif old != i and self.dataloader.worker_init_fn is not None:
                # that worker had made no batch yet: it started as seeded for its id
                pending[i] = dict(worker_init_fn=self.dataloader.worker_init_fn, worker_id=old)
        self._dataset._pending_worker_states = pending or None

    def run_epoch(self) -> None:
        """Iterate one epoch (from the first batch not done, when resumed)."""
        pipeline = getattr(self._dataset, 'pipeline', None)
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        # new workers this epoch (seeded as at the start): without persistent workers, or when a hook switched
        # the pipeline (mmdet's PipelineSwitchHook restarts persistent workers)
        switched = getattr(self._dataset, 'pipeline', None) is not pipeline
        pending, self._pending = self._pending, None
        if pending is not None:
            # a resumed process switches the pipeline at its first epoch past the switch epoch; the interrupted run
            # switched (and restarted its workers) only at the switch epoch itself
            switched = any(getattr(h, 'switch_epoch', None) == self._epoch for h in self.runner.hooks
                           if hasattr(h, 'switch_pipeline'))
        fresh_workers = not self.dataloader.persistent_workers or switched
        skip = 0
        if pending is not None:
            skip = self._iter - self._epoch * len(self.dataloader)
            if skip < 0 or skip > len(self.dataloader):
                skip = 0  # (== len: saved after the epoch's last batch, before its end: the end hooks still run)
            self._worker_states = {int(k): v for k, v in (pending.get('worker_states') or {}).items()}
            if self.dataloader.num_workers and (skip or not fresh_workers):
                # inside the epoch (states of this epoch's workers), or at its start with workers that go on
                self._prepare_workers(skip)
            elif pending.get('data') is not None:
                if switched and not skip:  # a new pipeline this epoch: no buffers to carry over
                    restore_rng(pending['data']['rng'])
                else:
                    restore_data_state(self._dataset, pending['data'])
            if 'batches_done' in pending:  # a checkpoint's state (not the hand-over after a resumed epoch)
                self._restore_grads(pending.get('grads'))
                if 'last_update_count' in pending and hasattr(self.runner.optim_wrapper, '_last_update_count'):
                    # the accumulation window goes on from the last optimizer step (mmengine restarts it)
                    self.runner.optim_wrapper._last_update_count = pending['last_update_count']
            if skip:
                print_log(f'--resume: epoch {self._epoch + 1} continues at batch {skip + 1} of '
                          f'{len(self.dataloader)} (the batches done are skipped, data state restored)',
                          logger='current')
        if fresh_workers and not skip:
            self._worker_states = {}  # only states of this epoch's workers are kept
        loader = self._epoch_loader(skip)
        iterator = iter(loader)
        self._dataset._pending_worker_states = None  # the workers have their copies
        if pending is not None and pending.get('rng') is not None:
            restore_rng(pending['rng'])
        self._batches_done = skip
        for idx, data_batch in enumerate(iterator, start=skip):
            worker_state = data_batch.pop('data_state', None) if isinstance(data_batch, dict) else None
            if worker_state is not None:
                # under the id of the worker that makes this batch in an uninterrupted epoch (batch b: worker
                # b % n; a resumed epoch's loader starts its round-robin at the first batch not done)
                self._worker_states[(int(worker_state[0]) + skip) % loader.num_workers] = worker_state[1]
            self.run_iter(idx, data_batch)
            self._batches_done = idx + 1
        if loader is not self.dataloader and self.dataloader.persistent_workers:
            # the resumed epoch's workers end with it: the loader's own workers start next epoch from their states
            # (the main random states go on as they are)
            self._pending = dict(worker_states=self._worker_states)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

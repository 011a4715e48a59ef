"""The state of a data-producing process, captured and restored for an exact ``--resume``.

A training sample depends on the random states of the process that makes it (Python's ``random``,
NumPy's global generator, torch's CPU generator) and on the mosaic buffers (``YOLOMosaic.buffer``:
the recently loaded images its partners are drawn from). Both are captured as plain data
(lists, ints, a uint8 tensor: what safe checkpoint loading reads) and restored, the buffers by
reloading their images by dataset index (an entry is a deterministic function of its image: the
resize draws no random number).

Who captures what: with data-loader workers, each worker attaches its state to every batch it
collates (``yolo_collate``, when ``dataset.track_data_state``), which the train loop keeps per
worker; without workers, the loop captures the main process's state at checkpoint time. A restored
worker takes its state at its first sample (:func:`restore_pending_worker_state`, called by our
datasets' ``prepare_data``).
"""
import random
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import torch


def capture_rng() -> Dict[str, Any]:
    """This process's random states (Python, NumPy, torch CPU; CUDA when initialised) as plain data."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(python=[version, list(internal), gauss],
                 numpy=[name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Dict[str, Any]) -> None:
    """Set the random states captured by :func:`capture_rng`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _transforms(transform) -> Iterator[Any]:
    for t in getattr(transform, 'transforms', None) or ():
        yield t
        yield from _transforms(t)


def mosaic_transforms(dataset) -> List[Any]:
    """The ``YOLOMosaic`` objects of ``dataset``'s pipeline (wrapped ones included), in pipeline order."""
    from .transforms.yolo_mosaic import YOLOMosaic
    return [t for t in _transforms(getattr(dataset, 'pipeline', None)) if isinstance(t, YOLOMosaic)]


def capture_data_state(dataset) -> Dict[str, Any]:
    """Random states and, per mosaic, the dataset indices of its buffer (oldest first)."""
    buffers = []
    for mosaic in mosaic_transforms(dataset):
        indices = [entry.get('sample_idx') for entry in mosaic.buffer]
        if any(i is None for i in indices):
            raise RuntimeError('capture_data_state: a mosaic buffer entry has no sample_idx (the dataset must '
                               "give 'sample_idx', as mmengine's BaseDataset.get_data_info does)")
        buffers.append([int(i) for i in indices])
    return dict(rng=capture_rng(), buffers=buffers)


def _loading_transforms(dataset, mosaic) -> List[Any]:
    """The top-level transforms before the one that is or holds ``mosaic`` (image and annotation loading)."""
    loaders = []
    for t in dataset.pipeline.transforms:
        if t is mosaic or any(inner is mosaic for inner in _transforms(t)):
            return loaders
        loaders.append(t)
    raise ValueError('restore_data_state: the mosaic is not in the dataset pipeline')


def restore_data_state(dataset, state: Dict[str, Any]) -> None:
    """Rebuild the mosaic buffers (reloading their images) and set the random states of :func:`capture_data_state`.

    Raises:
        ValueError: the pipeline has another number of mosaics than the state.
    """
    mosaics = mosaic_transforms(dataset)
    buffers = state.get('buffers', [])
    if len(buffers) != len(mosaics):
        raise ValueError(f'restore_data_state: {len(buffers)} mosaic buffers saved, but the pipeline has '
                         f'{len(mosaics)} YOLOMosaic (another pipeline than the one that was saved)')
    for mosaic, indices in zip(mosaics, buffers):
        loaders = _loading_transforms(dataset, mosaic)
        mosaic.buffer.clear()
        for idx in indices:
            results = dataset.get_data_info(idx)
            for t in loaders:
                results = t(results)
            entry = mosaic._resized_entry(results)
            entry['sample_idx'] = idx
            mosaic.buffer.append(entry)
    restore_rng(state['rng'])


def restore_pending_worker_state(dataset) -> None:
    """In a data-loader worker: take the state the train loop left for this worker id, once.

    ``dataset._pending_worker_states`` ({worker id: state}) is set by the loop in the main process
    before the workers start, so each worker finds it in its copy of the dataset.
    """
    pending: Optional[dict] = getattr(dataset, '_pending_worker_states', None)
    if not pending:
        return
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    state = pending.get(info.id)
    dataset._pending_worker_states = None  # this process's copy: once
    if state is None:
        return
    if 'worker_init_fn' in state:  # a worker that had made no batch yet: seeded as the loader seeds that id
        state['worker_init_fn'](state['worker_id'])
    else:
        restore_data_state(dataset, state)

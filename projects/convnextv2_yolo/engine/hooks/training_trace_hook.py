"""Per-iteration trace of a training run: the recipe's values as applied, the losses, the targets."""
import json
import math
import os.path as osp
from typing import Any, Dict, List, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper


def ema_decay(ema_model) -> Optional[float]:
    """The decay ``d`` (``ema = d * ema + (1 - d) * model``) of the averaged model's latest update.

    Knows :class:`~convnextv2_yolo.layers.YOLOModelEMA` (``decay_at(updates)``) and mmengine's/mmdet's
    momentum EMAs (``ExponentialMovingAverage``: ``1 - momentum``; mmdet's ``ExpMomentumEMA``:
    ``1 - ((1 - m) * exp(-(1 + steps) / gamma) + m)``, ``steps`` counted before the update). None
    before the first update or for other averaged models; mmengine's first update copies the model
    (``d = 0``).
    """
    steps = int(ema_model.steps)
    if steps == 0:
        return None
    if hasattr(ema_model, 'decay_at'):
        return float(ema_model.decay_at(steps))
    momentum = getattr(ema_model, 'momentum', None)
    if momentum is None:
        return None
    if steps == 1:  # mmengine's BaseAveragedModel copies at its first update
        return 0.0
    gamma = getattr(ema_model, 'gamma', None)
    if gamma is not None:  # mmdet ExpMomentumEMA.avg_func(steps = updates before this one)
        momentum = (1 - momentum) * math.exp(-float(steps) / gamma) + momentum
    return 1.0 - float(momentum)


def state_checksum(state: Dict[str, torch.Tensor]) -> Dict[str, List[float]]:
    """Checksums of a state dict per top-level module (``backbone``, ``neck``, ``bbox_head``, ...).

    Returns:
        dict: prefix -> ``[number of values, sum, sum of |x|, probe]`` in float64, where ``probe`` is
        ``sum(x_i * sin(0.1 i + k))`` over each tensor's values (``k`` its index under the prefix),
        which a permutation or a sign flip of weights changes even when the sums do not. Floating
        tensors only.
    """
    out: Dict[str, List[float]] = {}
    counters: Dict[str, int] = {}
    for key in sorted(state):
        value = state[key]
        if not torch.is_tensor(value) or not value.is_floating_point():
            continue
        prefix = key.split('.', 1)[0]
        k = counters.get(prefix, 0)
        counters[prefix] = k + 1
        x = value.detach().double().flatten().cpu()
        probe = float((x * torch.sin(0.1 * torch.arange(x.numel(), dtype=torch.float64) + k)).sum())
        acc = out.setdefault(prefix, [0.0, 0.0, 0.0, 0.0])
        acc[0] += x.numel()
        acc[1] += float(x.sum())
        acc[2] += float(x.abs().sum())
        acc[3] += probe
    return out


@HOOKS.register_module()
class TrainingTraceHook(Hook):
    """Write what a training run applied at every iteration to ``<work_dir>/trace.jsonl``.

    One JSON line per training iteration: ``epoch``, ``iter`` (global, from 0), per optimizer param
    group ``lr``, ``momentum`` (SGD's, or Adam's ``beta1``) and ``weight_decay`` as set for this
    iteration's step, ``accumulation`` (the optimizer wrapper's accumulation count),
    ``optimizer_steps`` (cumulative calls of ``optimizer.step``), ``ema_updates`` and ``ema_decay``
    (:func:`ema_decay`, when an ``EMAHook`` runs), the ``loss*`` outputs and, with
    ``record_targets``, per sample the image file name, the sum of its input pixels and its GT boxes
    (x1, y1, x2, y2 in input pixels) and labels. After training one line ``{"final": ...}`` holds
    :func:`state_checksum` of the weights that are evaluated (the EMA's when an ``EMAHook`` runs, else
    the model's). The golden-run tests (``tests/engine/test_golden_runs.py``) compare such traces with
    committed ones; it also answers "what LR / accumulation / EMA decay did my run use?".

    Args:
        out_file (str): File name in the work dir. Defaults to 'trace.jsonl'.
        record_targets (bool): Also write the per-sample targets. Defaults to True.
        digits (int): Significant digits of the floats written. Defaults to 10.
    """

    priority = 'LOWEST'  # before_train_iter after the schedulers set the values; after_train_iter after EMA

    def __init__(self, out_file: str = 'trace.jsonl', record_targets: bool = True, digits: int = 10) -> None:
        self.out_file = out_file
        self.record_targets = record_targets
        self.digits = digits
        self._row: Dict[str, Any] = {}
        self._steps = 0
        self._file = None

    def _round(self, value: float) -> float:
        return float(f'{value:.{self.digits}g}')

    def _ema_hook(self, runner) -> Optional[EMAHook]:
        return next((h for h in runner.hooks if isinstance(h, EMAHook) and hasattr(h, 'ema_model')), None)

    def before_train(self, runner) -> None:
        self._file = open(osp.join(runner.work_dir, self.out_file), 'a', encoding='utf-8')
        optimizer = runner.optim_wrapper.optimizer
        step = optimizer.step

        def counted_step(*args, **kwargs):
            self._steps += 1
            return step(*args, **kwargs)

        optimizer.step = counted_step

    def before_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None) -> None:
        groups = runner.optim_wrapper.optimizer.param_groups
        self._row = dict(
            epoch=runner.epoch, iter=runner.iter,
            lr=[self._round(g['lr']) for g in groups],
            momentum=[self._round(g['momentum'] if 'momentum' in g else g.get('betas', (math.nan,))[0])
                      for g in groups],
            weight_decay=[self._round(g.get('weight_decay', 0.0)) for g in groups],
            accumulation=int(runner.optim_wrapper._accumulative_counts))  # any mmengine OptimWrapper's
        if self.record_targets and data_batch is not None:
            self._row['samples'] = self._samples(data_batch)

    def _samples(self, data_batch: dict) -> List[dict]:
        inputs = data_batch.get('inputs')
        samples = []
        for i, sample in enumerate(data_batch.get('data_samples') or []):
            row: Dict[str, Any] = dict(img=osp.basename(str(sample.metainfo.get('img_path', ''))))
            if inputs is not None and i < len(inputs):
                row['pixel_sum'] = self._round(float(inputs[i].double().sum()))
            gt = getattr(sample, 'gt_instances', None)
            if gt is not None and 'bboxes' in gt:
                boxes = gt.bboxes.tensor if hasattr(gt.bboxes, 'tensor') else gt.bboxes
                row['boxes'] = [[round(float(v), 3) for v in b] for b in boxes.tolist()]
                row['labels'] = [int(v) for v in gt.labels.tolist()]
            samples.append(row)
        return samples

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        row = self._row
        row['optimizer_steps'] = self._steps
        hook = self._ema_hook(runner)
        if hook is not None:
            row['ema_updates'] = int(hook.ema_model.steps)
            decay = ema_decay(hook.ema_model)
            row['ema_decay'] = None if decay is None else self._round(decay)
        row['losses'] = {k: self._round(float(v)) for k, v in sorted((outputs or {}).items())
                         if k.startswith('loss') and torch.is_tensor(v) and v.numel() == 1}
        self._file.write(json.dumps(row) + '\n')
        self._file.flush()

    def after_train(self, runner) -> None:
        hook = self._ema_hook(runner)
        model = hook.ema_model.module if hook is not None else runner.model
        if is_model_wrapper(model):
            model = model.module
        final = {k: [self._round(v) for v in vals] for k, vals in state_checksum(model.state_dict()).items()}
        self._file.write(json.dumps(dict(final=final, weights='ema' if hook is not None else 'model')) + '\n')
        self._file.close()
        self._file = None

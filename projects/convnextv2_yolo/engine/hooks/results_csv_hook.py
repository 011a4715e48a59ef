"""``<work_dir>/results.csv``: one row per epoch with the reference trainer's columns."""
import logging
import math
import os
import os.path as osp
import time
from bisect import bisect
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from mmdet.registry import HOOKS
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ...utils.checkpoint_io import write_atomic

#: the reference's metric columns (``DetMetrics.keys``) -> our metric keys (``after_val_epoch``'s dict), the
#: first present wins: YOLODetMetric's (the reference's validator's numbers), else COCO's mAP
DEFAULT_METRIC_KEYS = (('metrics/precision(B)', 'yolo/precision'), ('metrics/recall(B)', 'yolo/recall'),
                       ('metrics/mAP50(B)', ('yolo/mAP50', 'coco/bbox_mAP_50')),
                       ('metrics/mAP50-95(B)', ('yolo/mAP50-95', 'coco/bbox_mAP')))
#: reference loss name -> our logged key, for a one-to-many head (YOLOHead) and YOLOE2EHead
YOLO_LOSS_KEYS = (('box_loss', 'loss_bbox'), ('cls_loss', 'loss_cls'), ('dfl_loss', 'loss_dfl'), ('l1_loss', 'loss_l1'))
E2E_LOSS_KEYS = (('box_loss', 'o2o_bbox'), ('cls_loss', 'o2o_cls'), ('dfl_loss', 'o2o_dfl'), ('l1_loss', 'o2o_l1'))
#: the reference's parameter-group kinds in its order (``BaseTrainer.build_optimizer``)
GROUP_KINDS = ('weight', 'bn', 'bias', 'muon')


def group_kind(group: Mapping) -> str:
    """The reference's kind of one of our param groups: ``weight`` (decayed), ``bn`` (no decay), ``bias``, ``muon``.

    ``YOLOOptimWrapperConstructor`` tags biases ``yolo_bias`` and decayed weights
    ``yolo_base_weight_decay``; MuSGD's matrices are ``use_muon``. Untagged groups (mmengine's and
    mmdet's constructors, e.g. the ConvNeXt recipe's layer decay) count as ``weight`` with a weight
    decay above 0, else ``bn`` (mmdet's no-decay groups hold norm weights and biases together).
    """
    if group.get('use_muon'):
        return 'muon'
    if group.get('yolo_bias'):
        return 'bias'
    if 'yolo_base_weight_decay' in group or float(group.get('weight_decay', 0.0) or 0.0) > 0:
        return 'weight'
    return 'bn'


def reference_lrs(param_groups: Sequence[Mapping]) -> List[float]:
    """Our optimizer's LRs as the reference lists them, ``lr/pg0``, ``lr/pg1``, ...

    Without MuSGD the reference has three groups: pg0 weights with decay, pg1 norm weights (no
    decay), pg2 biases. With MuSGD it has eight: (weight, bn, bias, muon), each split into the head's
    class branch (LR x 3) first, then the rest; groups without parameters are kept (their LR is still
    scheduled). A column takes the largest LR of our groups of its kind (under layer-wise LR decay:
    the undecayed layers'); a missing class-branch (or ordinary) part takes its other part's LR
    scaled by the class-branch factor, and a kind we lack the LR of a kind on the same schedule
    (biases: the no-decay groups, which hold them in mmdet's constructors; the other kinds share
    one warmup).
    """
    musgd = any(g.get('use_muon') for g in param_groups)
    scale = next((float(g['yolo_lr_scale']) for g in param_groups if g.get('yolo_lr_scale')), 3.0)
    lrs: Dict[Tuple[str, bool], float] = {}
    for g in param_groups:
        key = (group_kind(g), bool(g.get('yolo_lr_scale')) and musgd)
        lrs[key] = max(lrs.get(key, -math.inf), float(g['lr']))
    same_schedule = {'bias': ('bias', 'bn', 'weight', 'muon'), 'bn': ('bn', 'weight', 'muon'),
                     'weight': ('weight', 'muon', 'bn'), 'muon': ('muon', 'weight', 'bn')}

    def lookup(kind: str, boosted: bool) -> float:
        if (kind, boosted) in lrs:
            return lrs[kind, boosted]
        if (kind, not boosted) in lrs:  # the other part of the same kind: same schedule, scaled
            return lrs[kind, not boosted] * (scale if boosted else 1 / scale)
        for other in same_schedule[kind][1:]:
            if (other, boosted) in lrs:
                return lrs[other, boosted]
        for other in same_schedule[kind][1:]:
            if (other, not boosted) in lrs:
                return lrs[other, not boosted] * (scale if boosted else 1 / scale)
        return math.nan

    slots = [(k, b) for k in GROUP_KINDS for b in (True, False)] if musgd else [(k, False) for k in GROUP_KINDS[:3]]
    return [lookup(k, b) for k, b in slots]


def _fmt(value) -> str:
    """The reference's ``%.6g``; empty for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ''
    return '%.6g' % value


@HOOKS.register_module()
class ResultsCSVHook(Hook):
    """Write ``<work_dir>/results.csv``, one row per epoch, as the reference trainer does.

    The columns are the reference's (Ultralytics 8.4 ``BaseTrainer.save_metrics``): ``epoch`` (from 1),
    ``time`` (seconds since the start of training, carried across ``--resume``: the reference
    restarts it at 0), ``train/box_loss``, ``train/cls_loss``, ``train/dfl_loss`` (``train/l1_loss``
    for heads without DFL, YOLO26), ``metrics/precision(B)``, ``metrics/recall(B)``,
    ``metrics/mAP50(B)``, ``metrics/mAP50-95(B)``, ``val/box_loss`` ... (the three loss names again),
    then ``lr/pg0`` ... (:func:`reference_lrs`).

    - train losses: per image, averaged over the epoch's iterations with equal weights (the
      reference's running mean of its loss items). Our logged losses are the per-image loss times
      the iteration's batch size, so each iteration's value is divided by its number of data samples.
      One-to-many heads: ``loss_bbox``, ``loss_cls``, ``loss_dfl`` / ``loss_l1``; YOLOE2EHead: the
      one-to-one terms ``o2o_bbox``, ``o2o_cls``, ``o2o_l1`` (the items the reference logs).
    - metrics: ``metric_keys`` from the validation metrics of that epoch: ``yolo/precision``,
      ``yolo/recall``, ``yolo/mAP50``, ``yolo/mAP50-95`` (:class:`YOLODetMetric`, the reference's
      validator's numbers); without them mAP50 / mAP50-95 fall back to ``coco/bbox_mAP_50`` /
      ``coco/bbox_mAP``; empty when no key is there or the epoch was not validated (the
      reference repeats its previous values). The ``val/*`` losses are always empty: mmdet's
      validation computes no losses (the reference's validator does during training).
    - LRs: those the epoch's last iteration used (the reference reads them after the epoch's last
      step, before validation).

    A row is written after the epoch's validation, or at the end of the training epoch when the
    loop will not validate it. Every write replaces the file atomically (``write_atomic``), so a
    crash never leaves half a row. At the start of training rows after the resumed epoch are
    dropped (a fresh run, epoch 0, starts an empty file as the reference does), as is a last line
    that is incomplete (written by another tool or damaged); when the header differs, the new
    header replaces it and the old rows are kept under it by column name. Rank 0 only;
    epoch-based loops only (with another loop the hook warns once and writes nothing).

    Args:
        filename (str): File name in the work dir. Defaults to ``'results.csv'``.
        metric_keys (Sequence[tuple[str, str | Sequence[str]]]): (column, metric key) pairs; a
            sequence of keys: the first present in the validation metrics.
        loss_keys (Sequence[tuple[str, str]], optional): (reference loss name, our logged key) pairs;
            the default picks the E2E keys when the outputs have ``o2o_bbox``, else the one-to-many
            keys, and keeps those present in the first iteration's outputs.
    """

    priority = 'BELOW_NORMAL'  # before the LR schedulers (LOW) step after an iteration: it reads that iteration's LRs

    def __init__(self, filename: str = 'results.csv', metric_keys: Sequence[Tuple[str, str]] = DEFAULT_METRIC_KEYS,
                 loss_keys: Optional[Sequence[Tuple[str, str]]] = None) -> None:
        self.filename = filename
        self.metric_keys = [(column, (keys, ) if isinstance(keys, str) else tuple(keys))
                            for column, keys in metric_keys]
        self.loss_keys = None if loss_keys is None else [tuple(p) for p in loss_keys]
        self._enabled = True
        self._header: Optional[List[str]] = None
        self._rows: List[List[str]] = []
        self._sums: Dict[str, float] = {}
        self._iters = 0
        self._lrs: List[float] = []
        self._pending: Optional[Dict[str, float]] = None
        self._t0 = 0.0
        self._time_offset = 0.0

    # ------------------------------------------------------------------ file
    def _path(self, runner) -> str:
        return osp.join(runner.work_dir, self.filename)

    @staticmethod
    def read(path: str) -> Tuple[Optional[List[str]], List[List[str]]]:
        """(header, complete rows) of a results file; a last line without its newline or with
        a wrong number of fields, and rows whose epoch is not a number, are dropped."""
        if not osp.isfile(path):
            return None, []
        with open(path, encoding='utf-8') as f:
            text = f.read()
        lines = text.split('\n')
        complete = lines[:-1]  # the part after the last newline is incomplete (empty for a whole file)
        if not complete:
            return None, []
        header = complete[0].split(',')
        rows = []
        for line in complete[1:]:
            fields = line.split(',')
            if len(fields) != len(header):
                continue
            try:
                int(float(fields[0]))
            except ValueError:
                continue
            rows.append(fields)
        return header, rows

    def _text(self) -> str:
        return '\n'.join([','.join(self._header)] + [','.join(r) for r in self._rows]) + '\n'

    def _write(self, runner) -> None:
        path = self._path(runner)
        try:
            write_atomic(path, self._text())
        except OSError as e:  # a full disk must not end the run: the rows stay in memory for the next write
            from .yolo_checkpoint_hook import free_space
            print_log(f'ResultsCSVHook: {path} could not be written ({type(e).__name__}: {e}); {free_space(path)} '
                      'free there; the previous file is kept and the next epoch writes all rows again',
                      logger='current', level=logging.ERROR)

    # ------------------------------------------------------------------ hooks
    @master_only
    def before_train(self, runner) -> None:
        from mmengine.runner import EpochBasedTrainLoop
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            self._enabled = False
            print_log(f'ResultsCSVHook: writes one row per epoch, {type(runner.train_loop).__name__} is not '
                      'epoch based: no results.csv', logger='current', level=logging.WARNING)
            return
        self._t0 = time.time()
        path = self._path(runner)
        header, rows = self.read(path)
        resumed = runner.epoch
        if header is not None and resumed > 0:
            kept = [r for r in rows if int(float(r[0])) <= resumed]
            with open(path, encoding='utf-8') as f:
                before = f.read()
            self._header, self._rows = header, kept
            if kept:
                try:
                    self._time_offset = float(kept[-1][1])
                except (ValueError, IndexError):
                    self._time_offset = 0.0
            self._write(runner)
            if len(kept) != len(rows):
                print_log(f'ResultsCSVHook: resuming after epoch {resumed}: dropped the rows of later epochs '
                          f'from {path} ({len(kept)} kept)', logger='current', level=logging.WARNING)
            elif before != self._text():
                print_log(f'ResultsCSVHook: {path} had an incomplete or damaged line: removed',
                          logger='current', level=logging.WARNING)
        else:
            self._header, self._rows = None, []
            if osp.exists(path):
                os.unlink(path)

    @master_only
    def before_train_epoch(self, runner) -> None:
        if self._pending is not None and self._enabled:  # validation did not come after all
            self._flush(runner, None)
        self._sums, self._iters, self._lrs = {}, 0, []

    @master_only
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._enabled or not outputs:
            return
        if self.loss_keys is None:
            table = E2E_LOSS_KEYS if 'o2o_bbox' in outputs else YOLO_LOSS_KEYS
            self.loss_keys = [(name, key) for name, key in table if key in outputs]
        samples = data_batch.get('data_samples') if isinstance(data_batch, Mapping) else None
        batch = len(samples) if samples is not None else 1
        for _, key in self.loss_keys:
            if key in outputs:
                value = outputs[key]
                value = float(value.detach()) if torch.is_tensor(value) else float(value)
                self._sums[key] = self._sums.get(key, 0.0) + value / max(batch, 1)
        self._iters += 1
        # the LRs this iteration used (LR schedulers, priority LOW, step after this hook)
        self._lrs = reference_lrs(runner.optim_wrapper.param_groups)

    @master_only
    def after_train_epoch(self, runner) -> None:
        if not self._enabled:
            return
        row = {'epoch': runner.epoch + 1}
        for name, key in self.loss_keys or []:
            if key in self._sums and self._iters:
                row[f'train/{name}'] = round(self._sums[key] / self._iters, 5)
        for i, lr in enumerate(self._lrs):
            row[f'lr/pg{i}'] = lr
        self._pending = row
        if not self._will_validate(runner):
            self._flush(runner, None)

    @master_only
    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self._enabled and self._pending is not None:
            self._flush(runner, metrics or {})

    @master_only
    def after_train(self, runner) -> None:
        if self._enabled and self._pending is not None:
            self._flush(runner, None)

    # ------------------------------------------------------------------ rows
    @staticmethod
    def _will_validate(runner) -> bool:
        """Whether the epoch loop validates the epoch that just ended (``EpochBasedTrainLoop.run``)."""
        if runner.val_loop is None:
            return False
        loop = runner.train_loop
        epoch = runner.epoch + 1  # the loop counts it after after_train_epoch
        interval = loop.val_interval
        milestones = getattr(loop, 'dynamic_milestones', None)
        if milestones:  # the loop decides the interval with (epoch + 1) after counting the epoch
            interval = loop.dynamic_intervals[bisect(milestones, epoch + 1) - 1]
        return epoch >= loop.val_begin and (epoch % interval == 0 or epoch == loop.max_epochs)

    def _columns(self, row: Mapping) -> List[str]:
        names = [name for name, _ in self.loss_keys or []]
        lr_cols = [k for k in row if k.startswith('lr/')]
        return (['epoch', 'time'] + [f'train/{n}' for n in names] + [c for c, _ in self.metric_keys]
                + [f'val/{n}' for n in names] + lr_cols)

    def _flush(self, runner, metrics: Optional[Mapping]) -> None:
        row, self._pending = self._pending, None
        row['time'] = self._time_offset + time.time() - self._t0
        for column, keys in self.metric_keys:
            key = next((k for k in keys if metrics is not None and k in metrics), None)
            if key is not None:
                row[column] = float(metrics[key])
        columns = self._columns(row)
        if self._header != columns:
            if self._header is not None:
                print_log(f'ResultsCSVHook: {self._path(runner)} had other columns; rewriting it with '
                          f'{columns} (old rows kept by column name)', logger='current', level=logging.WARNING)
                index = {c: i for i, c in enumerate(self._header)}
                self._rows = [[r[index[c]] if c in index else '' for c in columns] for r in self._rows]
            self._header = columns
        epoch = row['epoch']
        self._rows = [r for r in self._rows if int(float(r[0])) < epoch]
        self._rows.append(['%d' % epoch] + [_fmt(row.get(c)) for c in columns[1:]])
        self._write(runner)

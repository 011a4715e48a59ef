"""The optimizer decision: one place for the reference's ``optimizer=auto`` rule and gradient accumulation.

Follows ``ultralytics/engine/trainer.py`` of ultralytics 8.4 (``BaseTrainer._setup_train``: the
accumulation ``max(round(nbs / batch), 1)`` and the weight-decay scale ``batch * accumulate / nbs``;
``BaseTrainer.build_optimizer``: ``optimizer=auto`` and the MuSGD parameter groups). The rule is
:func:`decide_optimizer`, a pure function of

- :class:`OptimizerPolicy`: what the config asks (``optim_wrapper`` keys and ``optimizer.type``),
  fixed when the optimizer wrapper is built;
- :class:`TrainingRun`: what the run is (total batch, the reference's iteration count, classes),
  known once the runner has built its training loop.

Its result, an immutable :class:`OptimizerDecision`, is made once per run by
``YOLOParamSchedulerHook.before_run`` and handed to the optimizer wrapper
(``YOLOGradAccumulation.apply_decision``), which builds the chosen optimizer, sets the accumulation
and scales the weight decay; the hooks read ``optim_wrapper.decision``. The wrapper saves the
decision's :class:`OptimizerChoice` with the optimizer state, and a resumed run restores it.
"""
import math
from dataclasses import asdict, dataclass
from typing import Any, Optional, Tuple

from ...dense_heads.yolo_head import CLS_BRANCHES

# the reference's optimizer=auto: MuSGD (8.3: SGD) above this many iterations, else AdamW
AUTO_MIN_LARGE_ITERATIONS = 10000
AUTO_LARGE_OPTIMIZERS = ('MuSGD', 'SGD')
# parameters whose LR the reference's MuSGD groups multiply by 3: the head's class branches (Detect.cv3 and,
# in end-to-end heads (YOLO26), Detect.one2one_cv3)
MUSGD_BOOSTED_PREFIXES = tuple(f'bbox_head.{branch}.' for branch in CLS_BRANCHES)
MUSGD_LR_BOOST = 3.0
# the reference's number of classes when the dataset names none (build_optimizer's nc default)
DEFAULT_NUM_CLASSES = 10


@dataclass(frozen=True)
class OptimizerPolicy:
    """What the config asks of the optimizer, validated once (built by the optimizer wrapper).

    Attributes:
        auto (bool): ``optimizer=dict(type='auto')``: the rule chooses the optimizer, lr and momentum.
        accumulative_counts (int, optional): A fixed gradient accumulation; None derives it from the
            batch (``optim_wrapper.accumulative_counts``).
        nominal_batch_size (int): The reference's ``nbs`` (``optim_wrapper.nominal_batch_size``).
        auto_large_optimizer (str): The automatic choice above 10,000 iterations: ``'MuSGD'``
            (ultralytics 8.4) or ``'SGD'`` (8.3) (``optim_wrapper.auto_large_optimizer``).

    Raises:
        ValueError: a non-positive ``accumulative_counts`` or ``nominal_batch_size``, or an unknown
            ``auto_large_optimizer``.
    """
    auto: bool = False
    accumulative_counts: Optional[int] = None
    nominal_batch_size: int = 64
    auto_large_optimizer: str = 'MuSGD'

    def __post_init__(self) -> None:
        counts = self.accumulative_counts
        if counts is not None and (not isinstance(counts, int) or counts < 1):
            raise ValueError('optim_wrapper.accumulative_counts must be a positive int or None (derived from '
                             f'the batch size), got {counts!r}')
        if self.nominal_batch_size < 1:
            raise ValueError(f'optim_wrapper.nominal_batch_size must be >= 1, got {self.nominal_batch_size}')
        if self.auto_large_optimizer not in AUTO_LARGE_OPTIMIZERS:
            raise ValueError(f'optim_wrapper.auto_large_optimizer must be one of {AUTO_LARGE_OPTIMIZERS}, '
                             f'got {self.auto_large_optimizer!r}')


@dataclass(frozen=True)
class TrainingRun:
    """What the rule needs to know about the run.

    Attributes:
        total_batch_size (int): Images per iteration over all processes (loader batch x world size).
        iterations (int): Optimizer iterations as the reference counts them for ``optimizer=auto``
            (:meth:`from_runner`). Defaults to 0 (only read under ``auto``).
        num_classes (int): Classes of the dataset. Defaults to 10 (the reference's when unknown).
    """
    total_batch_size: int
    iterations: int = 0
    num_classes: int = DEFAULT_NUM_CLASSES

    def __post_init__(self) -> None:
        if self.total_batch_size < 1:
            raise ValueError(f'total batch size must be >= 1, got {self.total_batch_size}')

    @classmethod
    def from_runner(cls, runner, nominal_batch_size: int) -> 'TrainingRun':
        """The run of an mmengine runner whose training loop is built.

        ``iterations = ceil(len(dataset) / max(total batch, nominal batch)) x max_epochs``
        (``BaseTrainer._setup_train``); an ``IterBasedTrainLoop``'s ``max_iters`` count in units of
        the nominal batch: ``ceil(max_iters x total batch / max(total batch, nominal batch))``.

        Args:
            runner (Runner): The runner (``train_dataloader``, ``train_loop``, ``max_epochs``/``max_iters``).
            nominal_batch_size (int): The policy's nominal batch.

        Returns:
            TrainingRun: The run.
        """
        from mmengine.runner import IterBasedTrainLoop

        from ...utils.batch_size import train_batch_size
        total_batch = train_batch_size(runner)
        nominal = max(total_batch, nominal_batch_size)
        dataset = runner.train_dataloader.dataset
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            iterations = math.ceil(runner.max_iters * total_batch / nominal)
        else:
            iterations = math.ceil(len(dataset) / nominal) * runner.max_epochs
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')  # a plain list has no metainfo
        return cls(total_batch, iterations, len(classes) if classes else DEFAULT_NUM_CLASSES)


@dataclass(frozen=True)
class OptimizerChoice:
    """Which optimizer, with which settings and parameter groups.

    Attributes:
        name (str): The optimizer's registry name (``'AdamW'``, ``'MuSGD'``, ``'SGD'``, ...).
        settings (tuple[tuple[str, Any], ...]): Keyword arguments of the optimizer built over the
            constructor's groups; empty: the optimizer the constructor built is kept (its LR as
            mmengine's ``auto_scale_lr`` left it).
        reference_groups (bool): MuSGD's groups as the reference's (:func:`musgd_param_groups`:
            2-D/4-D parameters in a Muon group, the class branches at LR x 3).
        warmup_bias_lr (float, optional): Starting LR of the bias warmup; None keeps
            ``YOLOParamSchedulerHook.warmup_bias_lr`` (``optimizer=auto`` sets 0, as the reference).
        reason (str): One line for the log.
    """
    name: str
    settings: Tuple[Tuple[str, Any], ...] = ()
    reference_groups: bool = False
    warmup_bias_lr: Optional[float] = None
    reason: str = ''

    def to_dict(self) -> dict:
        """Plain Python values (saved with the optimizer state; loads under torch's safe loading)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict) -> 'OptimizerChoice':
        """The choice saved by :meth:`to_dict`."""
        return cls(**dict(state, settings=tuple((k, v) for k, v in state['settings'])))


@dataclass(frozen=True)
class OptimizerDecision:
    """The optimizer and gradient accumulation of a run, decided once (:func:`decide_optimizer`).

    Attributes:
        choice (OptimizerChoice): Which optimizer.
        total_batch_size (int): Images per iteration over all processes.
        nominal_batch_size (int): The reference's ``nbs``.
        accumulate (int): Backward passes per optimizer step after the warmup.
        ramp_accumulation (bool): The warmup may ramp the accumulation 1 -> ``accumulate``
            (False when the config fixes it).
    """
    choice: OptimizerChoice
    total_batch_size: int
    nominal_batch_size: int
    accumulate: int
    ramp_accumulation: bool

    @property
    def weight_decay_scale(self) -> float:
        """Factor of the decayed groups' weight decay: ``total batch x accumulate / nominal batch``."""
        return self.total_batch_size * self.accumulate / self.nominal_batch_size

    def describe(self) -> str:
        """One line for the log."""
        return (f'{self.choice.reason}; accumulate {self.accumulate} x batch {self.total_batch_size} '
                f'(nominal {self.nominal_batch_size}), weight decay x {self.weight_decay_scale:g}')


def auto_choice(policy: OptimizerPolicy, run: TrainingRun) -> OptimizerChoice:
    """The reference's ``optimizer=auto`` (``BaseTrainer.build_optimizer``).

    Above 10,000 iterations :class:`MuSGD` (ultralytics 8.4: lr 0.01, momentum 0.9, Nesterov, muon
    0.2, sgd 1.0, the reference's groups) or, with ``auto_large_optimizer='SGD'``, SGD (8.3: lr 0.01,
    momentum 0.9, Nesterov); otherwise AdamW with lr ``round(0.002 * 5 / (4 + num_classes), 6)`` and
    betas (0.9, 0.999). The warmup bias LR becomes 0 for either.

    Args:
        policy (OptimizerPolicy): The config's policy.
        run (TrainingRun): The run.

    Returns:
        OptimizerChoice: The choice.
    """
    large = f'{run.iterations} iterations > {AUTO_MIN_LARGE_ITERATIONS}'
    if run.iterations > AUTO_MIN_LARGE_ITERATIONS and policy.auto_large_optimizer == 'MuSGD':
        return OptimizerChoice(
            'MuSGD', (('lr', 0.01), ('momentum', 0.9), ('nesterov', True), ('muon', 0.2), ('sgd', 1.0)),
            reference_groups=True, warmup_bias_lr=0.0,
            reason=(f"optimizer 'auto' -> MuSGD(lr=0.01, momentum=0.9, muon=0.2, sgd=1.0) for {large} "
                    "(ultralytics 8.4; auto_large_optimizer='SGD' for 8.3's SGD)"))
    if run.iterations > AUTO_MIN_LARGE_ITERATIONS:
        return OptimizerChoice(
            'SGD', (('lr', 0.01), ('momentum', 0.9), ('nesterov', True)), warmup_bias_lr=0.0,
            reason=f"optimizer 'auto' -> SGD(lr=0.01, momentum=0.9) for {large} "
                   "(auto_large_optimizer='SGD', ultralytics 8.3)")
    lr = round(0.002 * 5 / (4 + run.num_classes), 6)
    return OptimizerChoice(
        'AdamW', (('lr', lr), ('betas', (0.9, 0.999)), ('weight_decay', 0.0)), warmup_bias_lr=0.0,
        reason=(f"optimizer 'auto' -> AdamW(lr={lr}, momentum=0.9) for {run.iterations} iterations <= "
                f'{AUTO_MIN_LARGE_ITERATIONS} ({run.num_classes} classes)'))


def explicit_choice(optimizer) -> OptimizerChoice:
    """The choice for an optimizer the config names (built by ``YOLOOptimWrapperConstructor``).

    It is kept, except a :class:`MuSGD` whose groups are the constructor's (none with ``use_muon``):
    it is rebuilt with its settings (``optimizer.defaults`` but ``use_muon`` and ``weight_decay``)
    over the reference's groups.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer the constructor built.

    Returns:
        OptimizerChoice: The choice.
    """
    from .musgd import MuSGD
    name = type(optimizer).__name__
    groups = optimizer.param_groups
    if not isinstance(optimizer, MuSGD) or any(g['use_muon'] for g in groups) or not any(
            k.startswith('yolo_') for g in groups for k in g):  # MuSGD grouped by hand, or not ours
        return OptimizerChoice(name, reason=f'{name} as configured')
    settings = tuple((k, v) for k, v in optimizer.defaults.items() if k not in ('use_muon', 'weight_decay'))
    return OptimizerChoice(name, settings, reference_groups=True,
                           reason=f'MuSGD({dict(settings)}) with the reference groups')


def decide_optimizer(policy: OptimizerPolicy, optimizer, run: TrainingRun) -> OptimizerDecision:
    """The optimizer and gradient accumulation of a run (``BaseTrainer._setup_train``).

    ``accumulate = accumulative_counts or max(round(nominal batch / total batch), 1)``; the optimizer
    is :func:`auto_choice` under ``optimizer=auto``, else :func:`explicit_choice`.

    Args:
        policy (OptimizerPolicy): What the config asks.
        optimizer (torch.optim.Optimizer): The optimizer the constructor built (a placeholder under
            ``auto``).
        run (TrainingRun): The run.

    Returns:
        OptimizerDecision: The decision.
    """
    accumulate = policy.accumulative_counts or max(round(policy.nominal_batch_size / run.total_batch_size), 1)
    choice = auto_choice(policy, run) if policy.auto else explicit_choice(optimizer)
    return OptimizerDecision(choice, run.total_batch_size, policy.nominal_batch_size, accumulate,
                             ramp_accumulation=policy.accumulative_counts is None)

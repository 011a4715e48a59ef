"""Fine-tuning from a checkpoint with other classes: head width and class rows by name.

Follows the reference (Ultralytics 8.4, ``BaseModel.load`` and ``_remap_cls_by_names`` in
``ultralytics/nn/tasks.py``; see docs/reference_recipe.md, "Fine-tuning from a checkpoint"):

- the class branch (both, in an end-to-end head) keeps the checkpoint's width ``c3`` (80 for a COCO
  YOLO11-n or YOLO26-n) instead of the width the new ``num_classes`` gives (64 for 5 classes), when
  the head inputs match;
- rows of the final class convolutions (of both class branches in YOLO26's end-to-end head, the
  reference's ``cv3`` and ``one2one_cv3``) are copied by class name (case-insensitive, spaces
  stripped) from the checkpoint's classes to the dataset's; unmatched rows keep their init;
- every other tensor transfers when its shape matches.

:class:`YOLORunner` does this for ``load_from`` on every launcher (``tools/train.py``,
``mim train mmdet``, ``tools/dist_train.sh``: the recipe sets ``runner_type='YOLORunner'``);
``resume`` is untouched except that the head is built at the width of the checkpoint resumed.
It also applies the recipe's ``env_cfg.malloc`` (glibc allocator settings, ``utils/malloc.py``).
"""
import copy
import logging
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from torch import nn

from ..utils.checkpoint_io import read_checkpoint_meta, resumable_checkpoints
from ..utils.class_names import checkpoint_classes
from ..utils.malloc import configure_malloc

HEAD_TYPES = tuple(f'{scope}{name}' for name in ('YOLOHead', 'YOLO11Head', 'YOLOE2EHead')
                   for scope in ('', 'convnextv2_yolo.', 'mmdet.'))
NECK_TYPES = ('YOLOPAFPN', 'YOLO11PAFPN')
# final class conv of a level: '<prefix>bbox_head.cls_convs.<level>.<index>.weight' (an nn.Conv2d child)
_CLS_CONV_RE = re.compile(r'^(?:module\.)?bbox_head\.cls_convs\.(\d+)\.(\d+)\.weight$')
_REG_IN_RE = re.compile(r'^(?:module\.)?bbox_head\.reg_convs\.(\d+)\.0\.conv\.weight$')


class HeadLayout(NamedTuple):
    """What a state dict's ``bbox_head`` says about its shape.

    Attributes:
        num_classes (int): Rows of the final class convs.
        cls_channels (int): Class-branch width ``c3`` (input channels of the final class conv).
        in_channels (tuple[int]): Input channels of each level (of ``reg_convs.<i>.0``).
    """
    num_classes: int
    cls_channels: int
    in_channels: Tuple[int, ...]


def head_layout(shapes: Mapping[str, Sequence[int]]) -> Optional[HeadLayout]:
    """The YOLO11/YOLOv8 head layout of a state dict (ours or converted), None if it has none.

    Args:
        shapes (Mapping[str, Sequence[int]]): Key -> tensor shape (tensors or shapes).

    Returns:
        HeadLayout | None: Level 0's final class conv ``(nc, c3, 1, 1)`` gives ``num_classes`` and
        ``cls_channels``; ``reg_convs.<i>.0.conv.weight`` ``(c2, c_i, 3, 3)`` the inputs.
    """
    finals: Dict[int, Tuple[int, Sequence[int]]] = {}
    inputs: Dict[int, int] = {}
    for key, value in shapes.items():
        shape = tuple(getattr(value, 'shape', value))
        m = _CLS_CONV_RE.match(key)
        if m and len(shape) == 4:
            level, index = int(m.group(1)), int(m.group(2))
            if level not in finals or index > finals[level][0]:
                finals[level] = (index, shape)
        m = _REG_IN_RE.match(key)
        if m and len(shape) == 4:
            inputs[int(m.group(1))] = shape[1]
    if 0 not in finals:
        return None
    shape = finals[0][1]
    return HeadLayout(int(shape[0]), int(shape[1]), tuple(inputs[i] for i in sorted(inputs)))


def resolved_head_in_channels(model_cfg: dict) -> Optional[List[int]]:
    """The head's input channels of a config whose ``bbox_head.in_channels`` is ``'auto'``.

    The detector resolves them from the built neck (see :class:`YOLODetector`). A ``YOLOPAFPN``'s
    output channels follow from its own config (its scale or ``out_channels``, not its inputs): it
    is built alone on the meta device (no memory, no initialisation); any other model is built
    whole on the meta device.

    Args:
        model_cfg (dict): The model config (not modified).

    Returns:
        list[int] | None: The channels, None when the model cannot be built so.
    """
    from mmdet.registry import MODELS
    cfg = copy.deepcopy(model_cfg)
    neck = cfg.get('neck')
    try:
        with torch.device('meta'):
            if isinstance(neck, dict) and str(neck.get('type', '')).split('.')[-1] in NECK_TYPES:
                if neck.get('in_channels', 'auto') == 'auto':
                    neck['in_channels'] = [64, 128, 256]  # any: the outputs do not depend on them
                neck['sppf_c2psa'] = False  # idem (set 'auto' is resolved by the detector only)
                return list(MODELS.build(neck).out_channels)
            cfg.get('backbone', {}).pop('init_cfg', None)
            return list(MODELS.build(cfg).bbox_head.in_channels)
    except Exception:  # noqa: BLE001 - any build failure means "unknown": the caller skips the check
        return None


def fit_head_to_checkpoint(model_cfg: dict, checkpoint: str) -> Optional[int]:
    """Set ``model_cfg.bbox_head.cls_channels`` to the checkpoint's class-branch width.

    What the reference does when it loads weights into a model with other classes
    (``BaseModel.load``: the source's ``cv3`` is reused when the head inputs match). Nothing is
    changed when the config sets ``cls_channels`` itself, the head is not a ``YOLOHead``, the
    checkpoint is not a local file or has no such head, or its head inputs differ from the
    config's ``in_channels`` (another scale: the reference does not rebuild then either).

    Args:
        model_cfg (dict): The model config (modified in place).
        checkpoint (str): Path of the checkpoint (read memory-mapped).

    Returns:
        int | None: The width set, or None when nothing was set.

    Raises:
        FileNotFoundError, CheckpointLoadError: as :func:`convnextv2_yolo.utils.checkpoint_io.safe_torch_load`.
    """
    from ..utils.checkpoint_io import load_checkpoint_mmap
    head = model_cfg.get('bbox_head') if isinstance(model_cfg, dict) else None
    if (not isinstance(head, dict) or head.get('type') not in HEAD_TYPES or head.get('cls_channels')
            or not checkpoint or not osp.isfile(str(checkpoint))):
        return None
    ckpt = load_checkpoint_mmap(checkpoint)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    layout = head_layout({k: v for k, v in state.items() if isinstance(v, torch.Tensor)})
    if layout is None:
        return None
    in_channels = head.get('in_channels', 'auto')
    if in_channels == 'auto':
        in_channels = resolved_head_in_channels(model_cfg)
    if isinstance(in_channels, (list, tuple)) and tuple(in_channels) != layout.in_channels:
        print_log(f'{checkpoint}: class-branch width not taken from the checkpoint: its head inputs '
                  f'{list(layout.in_channels)} differ from the config\'s {list(in_channels)} (another scale)',
                  logger='current', level=logging.WARNING)
        return None
    head['cls_channels'] = layout.cls_channels
    print_log(f'{checkpoint}: class-branch width (cls_channels) {layout.cls_channels} taken from the checkpoint '
              f'({layout.num_classes} classes; the model has {head.get("num_classes")})', logger='current')
    return layout.cls_channels


class TransferReport(NamedTuple):
    """Outcome of :func:`transfer_state_dict`.

    Attributes:
        transferred (list[str]): Model keys whose values come from the checkpoint (whole, or class
            rows copied by name).
        total (int): Tensors in the model's state dict.
        skipped (list[tuple]): ``(key, checkpoint shape, model shape)`` left at the model's values.
        missing (list[str]): Model keys absent from the checkpoint.
        unexpected (list[str]): Checkpoint keys the model does not have.
        matched (list[tuple[str, str]]): ``(checkpoint name, dataset name)`` whose rows were copied.
        remapped (list[str]): Final class conv keys filled by name.
    """
    transferred: List[str]
    total: int
    skipped: List[Tuple[str, tuple, tuple]]
    missing: List[str]
    unexpected: List[str]
    matched: List[Tuple[str, str]]
    remapped: List[str]

    def summary(self) -> str:
        """One line: ``N of M tensors transferred; skipped (shape): ...; class rows copied by name: a->A``."""
        parts = [f'{len(self.transferred)} of {self.total} tensors transferred']
        if self.skipped:
            parts.append(f'{len(self.skipped)} skipped (shape, checkpoint -> model): ' + ', '.join(
                f'{k} {tuple(a)} -> {tuple(b)}' for k, a, b in self.skipped))
        if self.missing:
            parts.append(f'{len(self.missing)} not in the checkpoint: ' + ', '.join(self.missing[:10])
                         + (', ...' if len(self.missing) > 10 else ''))
        if self.unexpected:
            parts.append(f'{len(self.unexpected)} checkpoint tensors unused: ' + ', '.join(self.unexpected[:10])
                         + (', ...' if len(self.unexpected) > 10 else ''))
        if self.matched:
            parts.append(f'class rows copied by name ({len(self.matched)} classes, {len(self.remapped)} tensors): '
                         + ', '.join(f'{a}->{b}' for a, b in self.matched))
        return '; '.join(parts)


def final_cls_conv_keys(model: nn.Module) -> List[str]:
    """State-dict keys (weight, bias) of the last layer of every class branch (``cls_convs`` and, in
    end-to-end heads, ``one2one_cls_convs``) of every ``YOLOHead`` in ``model`` (the convs whose output
    rows are classes)."""
    from ..dense_heads.yolo_head import CLS_BRANCHES, YOLOHead
    keys = []
    for name, module in model.named_modules():
        if isinstance(module, YOLOHead):
            prefix = f'{name}.' if name else ''
            for attr in CLS_BRANCHES:
                for level, branch in enumerate(getattr(module, attr, None) or ()):
                    keys += [f'{prefix}{attr}.{level}.{len(branch) - 1}.{p}' for p, v in
                             branch[-1].named_parameters(recurse=False) if v is not None]
    return keys


def class_index_map(src_names: Optional[Sequence[str]], dst_names: Optional[Sequence[str]]) -> Optional[List[int]]:
    """For each destination class, the index of the source class of the same name, or -1.

    Names compare case-insensitive with surrounding spaces stripped (``'Car ' == 'car'``); when
    the source repeats a name, its last index wins (the reference's dict lookup). As the reference,
    None (nothing to remap) when either side has no names, no name matches, or both lists are the
    same in the same order (a plain copy then).

    Args:
        src_names (Sequence[str] | None): The checkpoint's classes.
        dst_names (Sequence[str] | None): The dataset's classes.

    Returns:
        list[int] | None: ``len(dst_names)`` source indices (-1: no match), or None.
    """
    if not src_names or not dst_names:
        return None
    lookup = {str(n).strip().lower(): i for i, n in enumerate(src_names)}
    idx = [lookup.get(str(n).strip().lower(), -1) for n in dst_names]
    if all(i < 0 for i in idx) or (len(src_names) == len(dst_names) and idx == list(range(len(dst_names)))):
        return None
    return idx


def transfer_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                        src_classes: Optional[Sequence[str]] = None,
                        dst_classes: Optional[Sequence[str]] = None) -> Tuple[Dict[str, torch.Tensor], TransferReport]:
    """The model's full state dict with the checkpoint's tensors where they fit.

    Reference: ``BaseModel.load`` (``intersect_dicts``: a tensor transfers when name and shape
    match) and ``_remap_cls_by_names`` (rows of the final class convs copied by class name; a
    tensor whose input width differs is left out) in ``ultralytics/nn/tasks.py``.

    Args:
        model (nn.Module): The model to load into (its current tensors fill what does not transfer).
        state_dict (Mapping[str, Tensor]): The checkpoint's, ``module.`` prefixes stripped.
        src_classes (Sequence[str], optional): The checkpoint's class names.
        dst_classes (Sequence[str], optional): The dataset's class names (the head's rows).

    Returns:
        tuple: ``(state, report)``: ``state`` has every key of ``model.state_dict()`` with matching
        shapes (so loading it never fails nor warns); :class:`TransferReport`.
    """
    own = model.state_dict()
    idx = class_index_map(src_classes, dst_classes)
    cls_keys = set(final_cls_conv_keys(model)) if idx is not None else set()
    out: Dict[str, torch.Tensor] = OrderedDict()
    out._metadata = getattr(own, '_metadata', OrderedDict())  # module versions, as load_state_dict expects
    transferred, skipped, missing, remapped = [], [], [], []
    for key, target in own.items():
        src = state_dict.get(key)
        if src is None:
            missing.append(key)
            out[key] = target
        elif key in cls_keys and len(idx) == target.shape[0] and tuple(src.shape[1:]) == tuple(target.shape[1:]):
            value = target.detach().clone()
            valid = torch.tensor([i >= 0 for i in idx], device=value.device)
            value[valid] = src[torch.tensor([i for i in idx if i >= 0], dtype=torch.long, device=src.device)].to(value)
            out[key] = value
            transferred.append(key)
            remapped.append(key)
        elif tuple(src.shape) == tuple(target.shape):
            out[key] = src.to(target.dtype) if src.is_floating_point() else src
            transferred.append(key)
        else:
            skipped.append((key, tuple(src.shape), tuple(target.shape)))
            out[key] = target
    matched = [(src_classes[i], n) for n, i in zip(dst_classes, idx) if i >= 0] if remapped else []
    unexpected = [k for k in state_dict if k not in own]
    return out, TransferReport(transferred, len(own), skipped, missing, unexpected, matched, remapped)


def _dataset_classes(runner: Runner) -> Optional[Tuple[str, ...]]:
    """Classes of the first built loop's dataset (train, then val, then test), else the config's."""
    from mmengine.runner import BaseLoop

    from ..datasets.data_overrides import inner_dataset
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
        if isinstance(loop, BaseLoop):
            classes = (getattr(loop.dataloader.dataset, 'metainfo', None) or {}).get('classes')
            if classes:
                return tuple(classes)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        classes = ((inner_dataset(runner.cfg.get(key)) or {}).get('metainfo') or {}).get('classes')
        if classes:
            return tuple(classes)
    return None


def _family_mismatch(meta: Optional[dict], model: nn.Module) -> Optional[str]:
    """A message when a converted reference checkpoint's family (``meta['version']``, written by
    ``ultralytics_to_mmdet``) differs from the model's (its backbone's or neck's ``version``), else None."""
    version = meta.get('version') if isinstance(meta, dict) else None
    if not isinstance(version, str):
        return None
    ours = {getattr(getattr(model, part, None), 'version', None) for part in ('backbone', 'neck')}
    ours = sorted(v for v in ours if isinstance(v, str) and v.startswith('yolo'))
    if not ours or version in ours:
        return None
    return (f"the checkpoint is a {version} model (meta version) and this model is {'/'.join(ours)}: only the "
            'tensors that fit were transferred')


@RUNNERS.register_module()
class YOLORunner(Runner):
    """mmengine's ``Runner`` that fine-tunes from checkpoints with other classes as the reference does.

    - ``build_model``: unless the config sets ``bbox_head.cls_channels``, the head is built at the
      class-branch width of the checkpoint to be loaded (``load_from``) or resumed
      (:func:`fit_head_to_checkpoint`); the width is also written into ``runner.cfg`` (so the
      dumped config and the checkpoints' config rebuild the same model).
    - ``load_checkpoint`` (``load_from``, not ``resume``): the checkpoint's state dict is replaced by
      :func:`transfer_state_dict`'s (class rows by name from the checkpoint's
      ``meta.dataset_meta.classes`` to the dataset's; other tensors when shapes match) before the
      hooks see it, so the EMA copy gets the same tensors; one summary line is logged
      (``N of M tensors transferred; ... class rows copied by name: car->Car``).

    - ``setup_env``: ``env_cfg.malloc`` (e.g. ``dict(trim_threshold=-1, mmap_max=0)``, the recipe's
      default) is applied with :func:`configure_malloc` before anything is built, so that freed
      activations stay in the process instead of coming back as page faults every iteration; what was
      set is logged once.

    With the same classes in the same order and the same width, nothing differs from ``Runner``
    (besides the summary line). Resuming loads exactly as ``Runner`` does.
    """

    # tools/test.py sets it: a load_from checkpoint that leaves model tensors at their initial values is
    # an error there (fine-tuning from another model is what load_from is for in training)
    checkpoint_must_fit = False

    def __init__(self, *args, **kwargs):
        self._malloc_report = {}
        super().__init__(*args, **kwargs)
        if self._malloc_report:
            self.logger.info('env_cfg.malloc: ' + ', '.join(f'{k} {v}' for k, v in self._malloc_report.items()))

    def setup_env(self, env_cfg: Dict) -> None:
        """``Runner.setup_env`` and then ``env_cfg.malloc`` (see :func:`configure_malloc`).

        Raises:
            ValueError: an unknown ``env_cfg.malloc`` key or a value outside its range (the key is named).
        """
        super().setup_env(env_cfg)
        self._malloc_report = configure_malloc(env_cfg.get('malloc'))

    def train(self) -> nn.Module:
        """``Runner.train``; first a warning when an end-to-end head (``bbox_head.o2m_weight``, YOLO26)
        trains without an ``E2ELossScheduleHook``: its one-to-many weight would stay fixed."""
        model = self.model.module if is_model_wrapper(self.model) else self.model
        head = getattr(model, 'bbox_head', None)
        if hasattr(head, 'o2m_weight') and not any(type(h).__name__ == 'E2ELossScheduleHook' for h in self.hooks):
            self.logger.warning(
                f'{type(head).__name__} trains without an E2ELossScheduleHook: the one-to-many loss weight stays '
                f'{head.o2m_weight} (one-to-one {1 - head.o2m_weight:g}) in every epoch; the reference moves it '
                "from 0.8 to 0.1: custom_hooks += [dict(type='E2ELossScheduleHook', start=0.8, final=0.1)]")
        return super().train()

    def _checkpoint_to_build_for(self) -> Optional[str]:
        if self._resume and self._load_from is None:
            return self._latest_resumable(log=False)
        return self._load_from

    def _latest_resumable(self, log: bool = True) -> Optional[str]:
        """``--resume`` (auto): the newest checkpoint of the work dir that loads (:func:`resumable_checkpoints`);
        each newer one skipped is a warning naming it and why."""
        path, skipped = resumable_checkpoints(self._work_dir)
        if log:
            for bad, why in skipped:
                self.logger.warning(f'--resume: skipping {bad}: {why}')
        return path

    def save_checkpoint(self, out_dir: str, filename: str, *args, meta: Optional[dict] = None, **kwargs) -> None:
        """``Runner.save_checkpoint`` plus ``meta['resume_state']`` of a ``YOLOEpochBasedTrainLoop`` (data
        state, random states, batches done) for an exact ``--resume``."""
        loop = self._train_loop
        if hasattr(loop, 'resume_state'):
            meta = dict(meta or {}, resume_state=loop.resume_state())
        return super().save_checkpoint(out_dir, filename, *args, meta=meta, **kwargs)

    def resume(self, filename: str, *args, **kwargs) -> None:
        """``Runner.resume``; the train loop gets the checkpoint's ``meta['resume_state']`` (if it takes one)."""
        super().resume(filename, *args, **kwargs)
        if hasattr(self.train_loop, 'load_resume_state'):
            self.train_loop.load_resume_state(read_checkpoint_meta(filename).get('resume_state'))

    def load_or_resume(self) -> None:
        """As ``Runner.load_or_resume``; auto-resume takes the newest checkpoint that loads, not mmengine's
        ``last_checkpoint`` blindly (a truncated newest file would end the run)."""
        if self._has_loaded or not (self._resume and self._load_from is None):
            return super().load_or_resume()
        path = self._latest_resumable()
        if path is None:
            self.logger.info(f'--resume: no loadable checkpoint in {self._work_dir}: training from the start')
            return None
        self.logger.info(f'Auto resumed from the latest loadable checkpoint {path}.')
        self.resume(path)
        self._has_loaded = True

    def build_model(self, model):
        """Build as ``Runner.build_model``, the head at the checkpoint's class-branch width (see class doc)."""
        if isinstance(model, dict):
            model = copy.deepcopy(model)
            width = fit_head_to_checkpoint(model, self._checkpoint_to_build_for())
            head_cfg = self.cfg.get('model', {}).get('bbox_head') if self.cfg is not None else None
            if width is not None and isinstance(head_cfg, dict):
                head_cfg['cls_channels'] = width
        return super().build_model(model)

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """``Runner.load_checkpoint``; for ``load_from`` (not resume) the tensors are transferred by
        :func:`transfer_state_dict` and the summary is logged. Arguments and return as mmengine's."""
        if self._resume:
            return super().load_checkpoint(filename, map_location, strict, revise_keys)
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        state = checkpoint.get('state_dict', checkpoint)
        for pattern, repl in revise_keys:
            state = {re.sub(pattern, repl, k): v for k, v in state.items()}
        model = self.model.module if is_model_wrapper(self.model) else self.model
        src_classes = checkpoint_classes(checkpoint.get('meta'))
        dst_classes = _dataset_classes(self)
        state, report = transfer_state_dict(model, state, src_classes, dst_classes)
        if len(report.transferred) < report.total and self.checkpoint_must_fit:
            raise ValueError(
                f'{filename} does not fit the config: {report.summary()}. Evaluating it would score a partly '
                'random model: is it a checkpoint of another family, scale or backbone? (tools/test.py and '
                'tools/infer.py need the config the checkpoint was trained with)')
        family = _family_mismatch(checkpoint.get('meta'), model)
        # new classes leave the final class convs at their init (fine-tuning); anything else is a warning
        final = set(final_cls_conv_keys(model))
        untouched = [k for k in report.missing + [k for k, _, _ in report.skipped] if k not in final]
        self.logger.log(logging.WARNING if untouched or family else logging.INFO,
                        f'load_from {filename}: {report.summary()}'
                        + (f'; {len(untouched)} model tensors besides the final class convs keep their initial '
                           'values' if untouched else '') + (f'; {family}' if family else ''))
        if src_classes is None and report.skipped:
            self.logger.info('the checkpoint names no classes (meta.dataset_meta.classes): no class rows copied')
        checkpoint = dict(checkpoint) if isinstance(checkpoint, dict) and 'state_dict' in checkpoint else {}
        checkpoint['state_dict'] = state
        checkpoint.pop('ema_state_dict', None)  # not resuming: the EMA starts from the transferred tensors
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=[])
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

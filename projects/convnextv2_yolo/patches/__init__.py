"""Fixes of upstream defects in the pinned OpenMMLab stack, in one place.

Each fix is one function with a docstring naming the upstream defect, what
goes wrong and the versions it applies to. :func:`apply_all` applies them once;
``import convnextv2_yolo`` calls it before anything else. Every fix is
idempotent. Replaced functions keep the upstream one as ``__wrapped__``.

Setting ``CONVNEXTV2_YOLO_SKIP_PATCHES`` to a comma-separated list of fix names
leaves those out (for diagnosis and for the tests that show each defect);
README "Compatibility fixes" lists them.
"""
import os
from typing import Callable, Dict, List

from .coco import coco_cat_ids_in_requested_order, coco_empty_results
from .mmengine_checkpoint import (allow_mmengine_checkpoint_globals, mmengine_checkpoint_globals,  # noqa: F401
                                  plain_message_hub_state, register_safe_local_loader)
from .mmengine_dist import cpu_distributed_launch
from .mmengine_io import atomic_local_writes, remove_old_checkpoints_after_saving
from .mmpretrain import skip_mmpretrain_multimodal_on_new_transformers

SKIP_ENV = 'CONVNEXTV2_YOLO_SKIP_PATCHES'

# in the order they are applied
PATCHES: List[Callable[[], None]] = [
    cpu_distributed_launch,
    skip_mmpretrain_multimodal_on_new_transformers,
    allow_mmengine_checkpoint_globals,
    plain_message_hub_state,
    register_safe_local_loader,
    atomic_local_writes,
    remove_old_checkpoints_after_saving,
    coco_cat_ids_in_requested_order,
    coco_empty_results,
]

_applied: Dict[str, bool] = {}


def skipped() -> List[str]:
    """Fix names listed in ``$CONVNEXTV2_YOLO_SKIP_PATCHES``.

    Raises:
        ValueError: a listed name is not a fix.
    """
    names = [n.strip() for n in os.environ.get(SKIP_ENV, '').split(',') if n.strip()]
    unknown = sorted(set(names) - {p.__name__ for p in PATCHES})
    if unknown:
        raise ValueError(f'{SKIP_ENV}: unknown fixes {unknown}; known: {[p.__name__ for p in PATCHES]}')
    return names


def apply_all() -> None:
    """Apply every fix once (idempotent), except those named in ``$CONVNEXTV2_YOLO_SKIP_PATCHES``."""
    skip = set(skipped())
    for patch in PATCHES:
        if patch.__name__ in skip or _applied.get(patch.__name__):
            continue
        patch()
        _applied[patch.__name__] = True


__all__ = ['PATCHES', 'SKIP_ENV', 'apply_all', 'mmengine_checkpoint_globals'] + [p.__name__ for p in PATCHES]

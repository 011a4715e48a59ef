"""Helpers for replacing an upstream attribute once (idempotent) and keeping the original reachable."""
import functools
from typing import Any, Callable

MARK = '_convnextv2_yolo_patch'


def is_patched(func: Any) -> bool:
    """Whether ``func`` is one of this package's replacements."""
    return getattr(func, MARK, False)


def replace(owner: Any, name: str, make: Callable[[Callable], Callable]) -> None:
    """Set ``owner.name = make(original)`` unless it was already replaced.

    The replacement gets ``__wrapped__ = original`` (so tests and users can call
    the upstream behaviour) and a marker that makes a second call a no-op.

    Args:
        owner: The class or module holding the attribute.
        name (str): Attribute name.
        make (callable): ``original -> replacement``.
    """
    original = getattr(owner, name)
    if is_patched(original):
        return
    new = make(original)
    functools.update_wrapper(new, original)  # name, docstring, __wrapped__ = original
    setattr(new, MARK, True)
    setattr(owner, name, new)

"""glibc ``malloc`` settings for CPU training (``env_cfg.malloc``).

PyTorch's CPU allocator takes every tensor from the C library's ``malloc``. With glibc's defaults a
training process returns its activations to the kernel after each iteration (blocks above the mmap
threshold are unmapped on free, the heap top above 128 KiB is trimmed) and takes them back on the
next one as fresh, zero-filled pages: on a 2-core CPU, YOLO11-n at 640 px, batch 16, that was about
0.9 million page faults and ~1.2 s of a 4.3 s iteration (``docs/reference_recipe.md``, "Throughput").
Keeping freed memory in the process (``trim_threshold=-1``, ``mmap_max=0``: the man page's
``M_TRIM_THRESHOLD``/``M_MMAP_MAX``) removes those faults; the price is that the process keeps its
peak heap until it exits, as a caching allocator would.

glibc reads ``MALLOC_<NAME>_`` environment variables (and ``GLIBC_TUNABLES``) at start; a setting the
user gave there wins and is not changed here. Elsewhere than glibc (musl, macOS, Windows) nothing is
done.
"""
import ctypes
import ctypes.util
import os
from typing import Dict, Mapping, Optional

# mallopt(3) parameter numbers (glibc's malloc.h)
MALLOPT_PARAMS = dict(trim_threshold=-1, top_pad=-2, mmap_threshold=-3, mmap_max=-4, arena_max=-8)
_TUNABLE_NAMES = dict(trim_threshold='glibc.malloc.trim_threshold', top_pad='glibc.malloc.top_pad',
                      mmap_threshold='glibc.malloc.mmap_threshold', mmap_max='glibc.malloc.mmap_max',
                      arena_max='glibc.malloc.arena_max')


def _glibc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library('c')
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # only glibc has it (and mallopt with these parameters)
        return libc
    except (OSError, AttributeError):
        return None


def _set_in_environment(name: str) -> Optional[str]:
    """The environment variable through which the user already set ``name``, if any."""
    var = f'MALLOC_{name.upper()}_'
    if var in os.environ:
        return var
    if _TUNABLE_NAMES[name] in os.environ.get('GLIBC_TUNABLES', ''):
        return 'GLIBC_TUNABLES'
    return None


def configure_malloc(options: Optional[Mapping[str, int]]) -> Dict[str, str]:
    """Apply ``mallopt(3)`` settings to this process (and the data-loader workers it forks later).

    Args:
        options: ``{name: value}`` with names from :data:`MALLOPT_PARAMS` (``trim_threshold``,
            ``top_pad``, ``mmap_threshold`` in bytes; ``mmap_max``, ``arena_max`` counts; ``-1`` for
            ``trim_threshold`` disables trimming). ``None`` or ``{}`` does nothing.

    Returns:
        ``{name: what happened}``: ``'set to V'``, ``'left to <ENV VAR>'`` or ``'not glibc'``.

    Raises:
        ValueError: an unknown name (the key is named), a value that is not an int, or one glibc
            refuses (``mallopt`` returns 0).
    """
    if not options:
        return {}
    unknown = sorted(set(options) - set(MALLOPT_PARAMS))
    if unknown:
        raise ValueError(f'env_cfg.malloc: unknown setting(s) {unknown}; known: {sorted(MALLOPT_PARAMS)}')
    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'env_cfg.malloc.{name} must be an int, got {value!r}')
    libc = _glibc()
    if libc is None:
        return {name: 'not glibc' for name in options}
    done = {}
    for name, value in options.items():
        env = _set_in_environment(name)
        if env is not None:
            done[name] = f'left to {env}'
            continue
        if libc.mallopt(MALLOPT_PARAMS[name], int(value)) != 1:
            raise ValueError(f'env_cfg.malloc.{name}={value}: glibc mallopt refused the value')
        done[name] = f'set to {value}'
    return done

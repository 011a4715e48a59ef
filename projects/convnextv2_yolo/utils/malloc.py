"""glibc ``malloc`` settings for CPU training (``env_cfg.malloc``).

PyTorch's CPU allocator takes every tensor from the C library's ``malloc``. With glibc's defaults a
training process returns its activations to the kernel after each iteration (blocks above the mmap
threshold are unmapped on free, the heap top above 128 KiB is trimmed) and takes them back on the
next one as fresh, zero-filled pages: on a 2-core CPU, YOLO11-n at 640 px, batch 16, that was about
0.9 million page faults and 4.35 s per iteration, against 2.85 s without them (``docs/reference_recipe.md``,
"Throughput").
Keeping freed memory in the process (``trim_threshold=-1``, ``mmap_max=0``: the man page's
``M_TRIM_THRESHOLD``/``M_MMAP_MAX``) removes those faults; the price is that the process keeps its
peak heap until it exits, as a caching allocator would.

glibc reads ``MALLOC_*`` environment variables (and ``GLIBC_TUNABLES``) at start; when the user tunes
malloc there, the environment wins and nothing is changed here. Elsewhere than glibc (musl, macOS,
Windows) nothing is done.
"""
import ctypes
import ctypes.util
import os
from typing import Dict, Mapping, Optional

# mallopt(3) parameter numbers (glibc's malloc.h)
MALLOPT_PARAMS = dict(trim_threshold=-1, top_pad=-2, mmap_threshold=-3, mmap_max=-4, arena_max=-8)
# the range each accepts (mallopt takes a C int; glibc 2.36 accepts almost anything, so it is checked here):
# M_TRIM_THRESHOLD -1 = never trim; M_MMAP_THRESHOLD at most 32 MiB on 64-bit (the man page's maximum)
_RANGES = dict(trim_threshold=(-1, 2 ** 31 - 1), top_pad=(0, 2 ** 31 - 1), mmap_threshold=(0, 32 * 2 ** 20),
               mmap_max=(0, 2 ** 31 - 1), arena_max=(1, 2 ** 31 - 1))
# the environment variables through which glibc takes the same settings at start (note: no trailing _ for
# the arena count); each is also the GLIBC_TUNABLES entry glibc.malloc.<name>
_ENV_NAMES = dict(trim_threshold='MALLOC_TRIM_THRESHOLD_', top_pad='MALLOC_TOP_PAD_',
                  mmap_threshold='MALLOC_MMAP_THRESHOLD_', mmap_max='MALLOC_MMAP_MAX_', arena_max='MALLOC_ARENA_MAX')


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


def malloc_environment() -> Optional[str]:
    """The first environment variable through which the user already tunes glibc's malloc, if any."""
    for name in MALLOPT_PARAMS:
        if _ENV_NAMES[name] in os.environ:
            return _ENV_NAMES[name]
    if any(f'glibc.malloc.{name}' in os.environ.get('GLIBC_TUNABLES', '') for name in MALLOPT_PARAMS):
        return 'GLIBC_TUNABLES'
    return None


def configure_malloc(options: Optional[Mapping[str, int]]) -> Dict[str, str]:
    """Apply ``mallopt(3)`` settings to this process (and the data-loader workers it forks later).

    When the user tunes malloc through the environment (any of ``MALLOC_TRIM_THRESHOLD_``,
    ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_MMAP_MAX_``, ``MALLOC_ARENA_MAX`` or a
    ``glibc.malloc.*`` entry of ``GLIBC_TUNABLES``), none of ``options`` is applied: mixing the two can
    be worse than either (a fixed trim threshold also stops glibc's sliding mmap threshold).

    Args:
        options: ``{name: value}`` with names from :data:`MALLOPT_PARAMS` (``trim_threshold``,
            ``top_pad``, ``mmap_threshold`` in bytes; ``mmap_max``, ``arena_max`` counts; ``-1`` for
            ``trim_threshold`` disables trimming). ``None`` or ``{}`` does nothing.

    Returns:
        ``{name: what happened}``: ``'set to V'``, ``'left to the environment (<VAR>)'`` or ``'not glibc'``.

    Raises:
        ValueError: an unknown name (the key is named), a value that is not an int or is outside
            the setting's range (``trim_threshold`` >= -1, ``mmap_threshold`` 0..32 MiB, ``arena_max``
            >= 1, others >= 0, all within a C int), or one glibc refuses (``mallopt`` returns 0).
    """
    if not options:
        return {}
    unknown = sorted(set(options) - set(MALLOPT_PARAMS))
    if unknown:
        raise ValueError(f'env_cfg.malloc: unknown setting(s) {unknown}; known: {sorted(MALLOPT_PARAMS)}')
    for name, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f'env_cfg.malloc.{name} must be an int, got {value!r}')
        low, high = _RANGES[name]
        if not low <= value <= high:
            raise ValueError(f'env_cfg.malloc.{name}={value} is outside {low}..{high}')
    libc = _glibc()
    if libc is None:
        return {name: 'not glibc' for name in options}
    env = malloc_environment()
    if env is not None:
        return {name: f'left to the environment ({env})' for name in options}
    done = {}
    for name, value in options.items():
        if libc.mallopt(MALLOPT_PARAMS[name], int(value)) != 1:
            raise ValueError(f'env_cfg.malloc.{name}={value}: glibc mallopt refused the value')
        done[name] = f'set to {value}'
    return done

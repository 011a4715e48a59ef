"""A small seeded mutation fuzzer for the file readers (``tests/fuzz``).

Each mutator takes a valid seed input and a ``random.Random`` and returns ``(mutated, description)``:

- :func:`mutate_bytes`: truncation at a random offset, byte flips, random bytes inserted, a chunk
  duplicated, an empty file, random bytes only;
- :func:`mutate_tree`: a JSON-like tree (dicts / lists) with one to three edits: a key deleted,
  renamed (unicode, empty) or a list entry duplicated / deleted, a value replaced by a wrong type,
  None, a huge number (1e308, 2**63, 10**400), NaN, inf, a negative size, an empty string, a unicode
  name, a deeply nested list;
- :func:`mutate_text`: rows of whitespace-separated numbers (YOLO label files) with tokens replaced
  by odd numbers / words, deleted or repeated, rows added, duplicated or cut;
- :func:`mutate_state_dict`: a ``name -> tensor`` dict with keys deleted / renamed (unicode, not a
  string), tensors of another shape (0-d, empty, extra dims) or dtype, non-tensor values, NaN / inf
  tensors.

:func:`run_cases` runs a reader over N mutations and collects every case that fails with anything but
the documented error naming the file (or whose result does not check out), with the mutation and
the traceback. N is ``CONVNEXTV2_YOLO_FUZZ_COUNT`` (default :data:`DEFAULT_COUNT` per reader).
"""
import copy
import math
import os
import random
import traceback
from typing import Any, Callable, List, Optional, Sequence, Tuple, Type

FUZZ_SEED = 20240622
DEFAULT_COUNT = 60
COUNT_ENV = 'CONVNEXTV2_YOLO_FUZZ_COUNT'
UNICODE_NAME = 'ü😀\u202e'
# values that readers trip over: wrong types, huge / non-finite / negative numbers, odd strings
WEIRD_VALUES: Sequence[Any] = (
    None, True, False, '', ' ', UNICODE_NAME, 'nan', '1e308', 0, -1, -0.5, 1.5, 1e-320, 1e308, -1e308,
    2**63, -2**63, 2**31, 10**400, float('nan'), float('inf'), float('-inf'), [], {}, [1, 2], [None],
    {'a': 1}, [0.0, 0.0, -5.0, -5.0], [1e308, 1e308, 1e308, 1e308], [0, 0, 0, 0, 0],
)
# tokens of a label row
WEIRD_TOKENS: Sequence[str] = (
    'nan', 'NaN', 'inf', '-inf', '-1', '-0', '1e308', '-1e308', '1e400', '1e-320', '2', '1.0000001',
    '0x10', '1_0', '\uff12', '', UNICODE_NAME, '0.5.5', '1e', '9' * 400, '3.4e38', '0', '1', '0.999999',
)


def fuzz_count() -> int:
    """Mutations per reader: ``$CONVNEXTV2_YOLO_FUZZ_COUNT`` or :data:`DEFAULT_COUNT`."""
    return int(os.environ.get(COUNT_ENV, DEFAULT_COUNT))


def case_rng(reader: str, index: int) -> random.Random:
    """The random source of one case (the same for a reader and index whatever the count)."""
    return random.Random(f'{FUZZ_SEED}:{reader}:{index}')


# ----------------------------------------------------------------------------- bytes
def mutate_bytes(data: bytes, rng: random.Random) -> Tuple[bytes, str]:
    """One byte-level mutation of ``data``."""
    kind = rng.choice(('truncate', 'truncate', 'flip', 'insert', 'duplicate', 'empty', 'random', 'nul'))
    n = len(data)
    if kind == 'truncate' and n:
        cut = rng.randrange(n)
        return data[:cut], f'truncated at byte {cut} of {n}'
    if kind == 'flip' and n:
        out = bytearray(data)
        spots = sorted(rng.randrange(n) for _ in range(rng.randint(1, 8)))
        for i in spots:
            out[i] = rng.randrange(256)
        return bytes(out), f'bytes {spots} replaced'
    if kind == 'insert':
        at = rng.randint(0, n)
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        return data[:at] + junk + data[at:], f'{junk!r} inserted at byte {at}'
    if kind == 'duplicate' and n:
        a = rng.randrange(n)
        b = min(n, a + rng.randint(1, 64))
        return data[:b] + data[a:b] + data[b:], f'bytes {a}:{b} repeated'
    if kind == 'nul' and n:
        at = rng.randrange(n)
        return data[:at] + b'\0' + data[at + 1:], f'NUL at byte {at}'
    if kind == 'random':
        junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 256)))
        return junk, f'{len(junk)} random bytes'
    return b'', 'empty file'


# ----------------------------------------------------------------------------- trees
def _paths(tree: Any, prefix: Tuple = ()) -> List[Tuple]:
    """Every path (tuple of keys / indices) into ``tree``'s containers and leaves."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, prefix + (k, ))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, prefix + (i, ))
    return out


def _get(tree: Any, path: Tuple) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def weird_value(rng: random.Random) -> Any:
    value = rng.choice(WEIRD_VALUES)
    return copy.deepcopy(value)


def _edit_tree(tree: Any, rng: random.Random) -> Tuple[Any, str]:
    paths = _paths(tree)
    path = rng.choice(paths)
    if not path:  # the root itself
        if rng.random() < 0.5:
            value = weird_value(rng)
            return value, f'root replaced by {value!r}'
        return [tree], 'root wrapped in a list'
    parent, key = _get(tree, path[:-1]), path[-1]
    kind = rng.choice(('replace', 'replace', 'replace', 'delete', 'rename', 'duplicate', 'nest', 'negate'))
    if kind == 'delete':
        del parent[key]
        return tree, f'{path} deleted'
    if kind == 'rename' and isinstance(parent, dict):
        new = rng.choice((UNICODE_NAME, '', key.upper() if isinstance(key, str) else 'x', f'{key} '))
        parent[new] = parent.pop(key)
        return tree, f'{path} renamed to {new!r}'
    if kind == 'duplicate' and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
        return tree, f'{path} duplicated'
    if kind == 'nest':
        parent[key] = [parent[key]]
        return tree, f'{path} wrapped in a list'
    if kind == 'negate' and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = -parent[key] - rng.choice((0, 1, 1e6))
        return tree, f'{path} negated to {parent[key]!r}'
    value = weird_value(rng)
    parent[key] = value
    return tree, f'{path} = {value!r}'


def mutate_tree(tree: Any, rng: random.Random) -> Tuple[Any, str]:
    """One to three edits of a copy of a JSON-like tree."""
    tree = copy.deepcopy(tree)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        tree, what = _edit_tree(tree, rng)
        done.append(what)
    return tree, '; '.join(done)


def deep_nesting(depth: int = 100_000) -> str:
    """A JSON / yaml document of ``depth`` nested lists."""
    return '[' * depth + ']' * depth


# ----------------------------------------------------------------------------- text rows
def mutate_text(text: str, rng: random.Random) -> Tuple[str, str]:
    """One to three edits of the rows / tokens of a label file."""
    rows = [line.split() for line in text.splitlines()]
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        kind = rng.choice(('token', 'token', 'token', 'drop_token', 'add_token', 'add_row', 'dup_row',
                           'drop_row', 'blank'))
        if not rows:
            rows.append(['0'])
        r = rng.randrange(len(rows))
        row = rows[r]
        if kind == 'token' and row:
            t = rng.randrange(len(row))
            row[t] = rng.choice(WEIRD_TOKENS)
            done.append(f'row {r + 1} token {t} = {row[t]!r}')
        elif kind == 'drop_token' and row:
            t = rng.randrange(len(row))
            del row[t]
            done.append(f'row {r + 1} token {t} deleted')
        elif kind == 'add_token':
            token = rng.choice(WEIRD_TOKENS)
            row.append(token)
            done.append(f'row {r + 1} gets {token!r}')
        elif kind == 'add_row':
            tokens = WEIRD_TOKENS + ('0', '0.5', '0.5', '0.1', '0.1')
            new = [rng.choice(tokens) for _ in range(rng.choice((5, 5, 7, 9)))]
            rows.insert(r, new)
            done.append(f'row {new} inserted at {r + 1}')
        elif kind == 'dup_row':
            rows.insert(r, list(row))
            done.append(f'row {r + 1} repeated')
        elif kind == 'drop_row':
            del rows[r]
            done.append(f'row {r + 1} deleted')
        else:
            rows[r] = []
            done.append(f'row {r + 1} blanked')
    return '\n'.join(' '.join(row) for row in rows) + '\n', '; '.join(done)


# ----------------------------------------------------------------------------- state dicts
def mutate_state_dict(sd: dict, rng: random.Random) -> Tuple[dict, str]:
    """One to three edits of a copy of a ``name -> tensor`` dict."""
    import torch
    sd = dict(sd)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        if not sd:
            break
        key = rng.choice(list(sd))
        kind = rng.choice(('delete', 'rename', 'shape', 'shape', 'dtype', 'value', 'nan', 'empty', 'scalar'))
        if kind == 'delete':
            del sd[key]
            done.append(f'{key} deleted')
        elif kind == 'rename':
            new = rng.choice((UNICODE_NAME + key, '', 7, None, key + '.', key.replace('.', '..', 1), (key, )))
            sd[new] = sd.pop(key)
            done.append(f'{key} renamed to {new!r}')
        elif kind == 'shape':
            shape = tuple(rng.choice((0, 1, 2, 3, 9)) for _ in range(rng.randint(0, 5)))
            sd[key] = torch.rand(shape)
            done.append(f'{key} of shape {shape}')
        elif kind == 'dtype':
            dtype = rng.choice((torch.int64, torch.bool, torch.float16, torch.uint8, torch.complex64))
            sd[key] = torch.zeros(sd[key].shape if isinstance(sd[key], torch.Tensor) else (2, ), dtype=dtype)
            done.append(f'{key} of dtype {dtype}')
        elif kind == 'value':
            value = weird_value(rng)
            sd[key] = value
            done.append(f'{key} = {value!r}')
        elif kind == 'nan' and isinstance(sd[key], torch.Tensor) and sd[key].is_floating_point():
            sd[key] = torch.full_like(sd[key], rng.choice((math.nan, math.inf)))
            done.append(f'{key} non-finite')
        elif kind == 'empty':
            sd[key] = torch.empty(0)
            done.append(f'{key} empty')
        else:
            sd[key] = torch.tensor(rng.choice((1.0, -1.0, 1e30)))
            done.append(f'{key} a 0-d tensor')
    return sd, '; '.join(done)


# ----------------------------------------------------------------------------- running
class Escape(Exception):
    """A case that failed otherwise than the reader documents."""


def check_error(error: BaseException, allowed: Tuple[Type[BaseException], ...], names: Sequence[str]) -> None:
    """``error`` must be one of ``allowed`` and its message name one of ``names`` (the file)."""
    if not isinstance(error, allowed):
        raise Escape(f'{type(error).__name__} is not one of {[e.__name__ for e in allowed]}') from error
    if not any(n in str(error) for n in names):
        raise Escape(f'{type(error).__name__} does not name the file ({names[0]}): {error}') from error


def check_box_xyxy(box: Sequence[float], where: str) -> None:
    """Four finite coordinates with ``x2 >= x1`` and ``y2 >= y1``."""
    if len(box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box):
        raise Escape(f'{where}: box {box!r} is not 4 finite numbers')
    if box[2] < box[0] or box[3] < box[1]:
        raise Escape(f'{where}: box {box!r} has a negative size')


def run_cases(reader: str, count: int, make_case: Callable[[random.Random, int], Tuple[Any, str]],
              run_case: Callable[[Any], None]) -> List[str]:
    """Run ``count`` mutated cases of one reader; the reports of the cases that escaped.

    Args:
        reader (str): Name of the reader (seeds the mutations).
        count (int): Cases.
        make_case: ``(rng, index) -> (case, description)``: writes the mutated input.
        run_case: ``case -> None``: reads it; raises :class:`Escape` (or anything) when the outcome
            is not the documented one.
    """
    failures: List[str] = []
    for index in range(count):
        rng = case_rng(reader, index)
        case, description = make_case(rng, index)
        try:
            run_case(case)
        except Exception as e:  # noqa: B902 (every escape is reported)
            failures.append(f'{reader} case {index} ({description}): {type(e).__name__}: {str(e)[:300]}\n'
                            f'{traceback.format_exc(limit=-8)}')
    return failures


def report(failures: List[str], count: int, shown: int = 3) -> Optional[str]:
    """The failure message of a fuzz test: one line per escape, the first tracebacks (None: no escape)."""
    if not failures:
        return None
    return (f'{len(failures)} of {count} mutated inputs escaped:\n'
            + '\n'.join(f.splitlines()[0] for f in failures)
            + f'\n\nthe first {min(shown, len(failures))} in full:\n\n' + '\n\n'.join(failures[:shown]))

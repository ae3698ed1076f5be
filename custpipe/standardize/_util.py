"""Vectorisation helpers: evaluate a per-value function once per distinct value."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd


def is_missing(value: Any) -> bool:
    """True for None / NaN / pd.NA / NaT."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def as_text(value: Any) -> str:
    """Render a scalar as text; integral floats (1067.0) lose their '.0'."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


# Below this many distinct values a process pool costs more than it saves.
PARALLEL_MIN_VALUES = int(os.environ.get("CUSTPIPE_PARALLEL_MIN_VALUES", "50000"))


def _apply_chunk(func: Callable[..., Any], args: Sequence[tuple]) -> list[Any]:
    return [func(*a) for a in args]


def evaluate(func: Callable[..., Any], args: Sequence[tuple]) -> list[Any]:
    """`[func(*a) for a in args]`, spread over the machine's cores when the list is long.

    `func` must be a module-level, pure function. Workers are forked (Linux): they inherit
    the loaded modules, need no re-import of the caller's `__main__`, and only run `func`
    on plain values (CPython re-initialises the import lock in a forked child).
    """
    workers = min(os.cpu_count() or 1, 8)
    methods = multiprocessing.get_all_start_methods()
    if workers < 2 or len(args) < PARALLEL_MIN_VALUES or "fork" not in methods:
        return _apply_chunk(func, args)
    size = -(-len(args) // (workers * 4))
    chunks = [args[i : i + size] for i in range(0, len(args), size)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = pool.map(_apply_chunk, [func] * len(chunks), chunks)
        return [result for part in parts for result in part]


def _to_series(values: Any, index: pd.Index) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    return pd.Series([values] * len(index), index=index, dtype=object)


def map_unique(s: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """Apply ``func`` to each distinct non-missing value; missing -> None; object dtype."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = evaluate(func, [(v,) for v in uniques]) if len(uniques) else []
    table[-1] = None  # code -1 (missing) picks the last slot
    return pd.Series(table[codes], index=s.index, dtype=object, name=s.name)


def map_unique2(
    s: pd.Series, func: Callable[[Any], tuple[Any, Any]]
) -> tuple[pd.Series, pd.Series]:
    """Like :func:`map_unique` for a function returning a pair; missing -> (None, None)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    first = np.empty(len(uniques) + 1, dtype=object)
    second = np.empty(len(uniques) + 1, dtype=object)
    for i, (a, b) in enumerate(evaluate(func, [(v,) for v in uniques])):
        first[i], second[i] = a, b
    first[-1] = second[-1] = None
    return (
        pd.Series(first[codes], index=s.index, dtype=object, name=s.name),
        pd.Series(second[codes], index=s.index, dtype=object),
    )


def map_unique_pairs(
    s: pd.Series,
    other: Any,
    func: Callable[[Any, Hashable | None], tuple[Any, Any]],
) -> tuple[pd.Series, pd.Series]:
    """Evaluate ``func(value, other_value)`` once per distinct pair.

    Missing ``s`` -> (None, None); missing ``other`` is passed to ``func`` as None.
    ``other`` may be a Series aligned with ``s`` or a scalar.
    """
    other = _to_series(other, s.index)
    if not other.index.equals(s.index):
        other = other.reindex(s.index)
    codes_s, uniq_s = pd.factorize(s, use_na_sentinel=True)
    codes_o, uniq_o = pd.factorize(other, use_na_sentinel=True)
    width = len(uniq_o) + 1
    combined = codes_s.astype(np.int64) * width + (codes_o.astype(np.int64) + 1)
    keys, inverse = np.unique(combined, return_inverse=True)
    first = np.empty(len(keys), dtype=object)
    second = np.empty(len(keys), dtype=object)
    todo, slots = [], []
    for i, key in enumerate(keys.tolist()):
        cs, co = divmod(key, width)
        if cs < 0 or cs >= len(uniq_s):  # missing value (code -1 wraps negative)
            first[i] = second[i] = None
            continue
        todo.append((uniq_s[cs], None if co == 0 else uniq_o[co - 1]))
        slots.append(i)
    for i, (a, b) in zip(slots, evaluate(func, todo), strict=True):
        first[i], second[i] = a, b
    inverse = inverse.reshape(-1)
    return (
        pd.Series(first[inverse], index=s.index, dtype=object, name=s.name),
        pd.Series(second[inverse], index=s.index, dtype=object),
    )

"""Vectorisation helpers: evaluate a per-value function once per distinct value."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
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


def _to_series(values: Any, index: pd.Index) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    return pd.Series([values] * len(index), index=index, dtype=object)


def map_unique(s: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """Apply ``func`` to each distinct non-missing value; missing -> None; object dtype."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    for i, value in enumerate(uniques):
        table[i] = func(value)
    table[-1] = None  # code -1 (missing) picks the last slot
    return pd.Series(table[codes], index=s.index, dtype=object, name=s.name)


def map_unique2(
    s: pd.Series, func: Callable[[Any], tuple[Any, Any]]
) -> tuple[pd.Series, pd.Series]:
    """Like :func:`map_unique` for a function returning a pair; missing -> (None, None)."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    first = np.empty(len(uniques) + 1, dtype=object)
    second = np.empty(len(uniques) + 1, dtype=object)
    for i, value in enumerate(uniques):
        first[i], second[i] = func(value)
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
    for i, key in enumerate(keys.tolist()):
        cs, co = divmod(key, width)
        if cs < 0 or cs >= len(uniq_s):  # missing value (code -1 wraps negative)
            first[i] = second[i] = None
            continue
        other_value = None if co == 0 else uniq_o[co - 1]
        first[i], second[i] = func(uniq_s[cs], other_value)
    inverse = inverse.reshape(-1)
    return (
        pd.Series(first[inverse], index=s.index, dtype=object, name=s.name),
        pd.Series(second[inverse], index=s.index, dtype=object),
    )

"""Helpers for the standardiser tests."""

from __future__ import annotations

from typing import Any

import pandas as pd


def one(value: Any) -> pd.Series:
    """A one-row object Series."""
    return pd.Series([value], dtype=object)

"""JSON Lines records turned into an Arrow table of strings without pandas, where pandas
would make exactly those strings.

The JSON Lines reader (`custpipe.sources.readers.read_jsonl`) flattens each chunk of
records with `pd.json_normalize(records, sep=".")`, turns every value into its text
(`readers._as_strings`) and the landing turns the frame into Arrow: ~1 s of the demo's
140,000-record service export. When every value of a chunk is a string or null (the
usual export), pandas infers no type and changes no value, so the flattened strings go to
Arrow directly: the same columns in the same order (pandas' flattening, then the order in
which keys first appear), a null where a record lacks a key. A chunk holding anything else
(a number, a boolean, a list, no key at all) is left to pandas (None here).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def _nested(data: dict, prefix: str, sep: str, out: dict[str, Any]) -> None:
    """pandas' _normalise_json: nested keys joined by `sep`, leaves in `out`."""
    for key, value in data.items():
        name = f"{prefix}{sep}{key}"
        if not prefix:
            name = name.removeprefix(sep)
        if isinstance(value, dict):
            _nested(value, name, sep, out)
        else:
            out[name] = value


def flatten(record: dict, sep: str = ".") -> dict[str, Any]:
    """One record flattened as pandas' _simple_json_normalize does: its keys that hold no
    object first, then those of its objects, joined by `sep` (an empty object vanishes)."""
    nested = {k: v for k, v in record.items() if isinstance(v, dict)}
    if not nested:
        return record
    top = {k: v for k, v in record.items() if not isinstance(v, dict)}
    flat: dict[str, Any] = {}
    _nested(nested, "", sep, flat)
    return {**top, **flat}


def strings_table(records: list[dict], sep: str = ".") -> pa.Table | None:
    """The records as a table of string columns, as pandas would make them (see the module
    docstring), or None when a value is neither a string nor null."""
    columns: dict[str, list] = {}
    rows = len(records)
    for i, record in enumerate(records):
        for key, value in flatten(record, sep).items():
            if value is not None and type(value) is not str:
                return None
            column = columns.get(key)
            if column is None:
                column = columns[key] = [None] * rows
            column[i] = value
    if not columns:
        return None
    return pa.table([pa.array(v, pa.string()) for v in columns.values()], names=list(columns))

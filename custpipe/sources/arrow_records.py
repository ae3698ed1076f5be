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

A whole file of such records is parsed by Arrow's JSON reader (:func:`jsonl_chunks`), in C++
(~0.4 s for those 140,000 records, where `json.loads` per line and the flattening above took
~3 s), when the result is provably the same chunks: every value a string or null (Arrow is
told to read strings and refuses anything else), each line one object, no escape `\\u`, no carriage
return, no nested object given as `null`, every column present in the first chunk. The order
of the first chunk's columns — the order in which the flattened keys first appear — comes from
its first records, read with `json.loads` until every column has appeared; every later chunk
lands in that order anyway. Any other file goes the old way (None here).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
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


#: JSON Lines files up to this size are parsed whole by Arrow (:func:`jsonl_chunks`)
MAX_BYTES = 128 << 20


def _strings_type(kind: pa.DataType) -> pa.DataType:
    """`kind` with every leaf a string (objects stay objects)."""
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _strings_type(f.type)) for f in kind])
    return pa.string()


def _strings_of(record: dict) -> list[pa.Field]:
    """Fields of strings for the keys of `record` (objects as structs of them)."""
    return [
        pa.field(k, pa.struct(_strings_of(v)) if isinstance(v, dict) else pa.string())
        for k, v in record.items()
    ]


def _leaves(
    array: pa.Array, name: str, sep: str, out: dict[str, pa.Array], objects: list[tuple]
) -> None:
    """The leaf columns of `array` flattened as :func:`flatten` names them; `objects` gets
    (key, null count) of every object column."""
    if pa.types.is_struct(array.type):
        objects.append((name.rsplit(sep, 1)[-1], array.null_count))
        for field, child in zip(array.type, array.flatten(), strict=True):  # parent's nulls
            _leaves(child, f"{name}{sep}{field.name}" if name else field.name, sep, out, objects)
    elif name in out:
        raise ValueError(f"column {name!r} twice")
    else:
        out[name] = array.cast(pa.string())


def _first_order(data: bytes, rows: int, wanted: set[str], sep: str) -> list[str] | None:
    """The order in which the columns `wanted` first appear in the first `rows` records of
    `data` (one per line), as :func:`strings_table` orders them; None when a record holds a
    key not wanted or a column does not appear."""
    order: dict[str, None] = {}
    lines = io.BytesIO(data)
    for _ in range(rows):
        for key, value in flatten(json.loads(lines.readline()), sep).items():
            if key not in wanted or (value is not None and type(value) is not str):
                return None
            order.setdefault(key)
        if len(order) == len(wanted):
            return list(order)
    return None


def jsonl_chunks(path: Path, chunk_size: int, sep: str = ".") -> list[pa.Table] | None:
    """A UTF-8 JSON Lines file as the tables of strings that `strings_table` makes of its
    chunks of `chunk_size` records, each in the first chunk's column order (as they land);
    None when Arrow's reading might differ (see the module docstring)."""
    import pyarrow.json as pa_json

    if path.stat().st_size > MAX_BYTES:
        return None
    data = path.read_bytes()
    if not data or b"\\u" in data or b"\r" in data or data.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    body = data.removesuffix(b"\n")
    lines = body.count(b"\n") + 1
    # every line one object: each starts with '{' and ends with '}' (no object then spans
    # lines: '}' newline '{' is no JSON inside one), and Arrow finds as many records as lines
    # (not two on one line); so no blank line, no 'null' line, no other value
    if not (body.startswith(b"{") and body.endswith(b"}")) or not (
        body.count(b"\n{") == body.count(b"}\n") == lines - 1
    ):
        return None
    try:  # the first record's keys as strings: Arrow would read a date-like one as a date
        schema = pa.schema(_strings_of(json.loads(data[: data.find(b"\n")])))
    except (ValueError, TypeError, AttributeError):
        return None
    for _ in range(3):  # a key Arrow had to infer (a date, say) is read again as a string
        options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
        try:
            table = pa_json.read_json(io.BytesIO(data), parse_options=options)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # not a string or null, not an object, not JSON: the old way decides
        wanted = pa.schema([pa.field(f.name, _strings_type(f.type)) for f in table.schema])
        if table.schema == wanted:
            break
        schema = wanted
    else:
        return None
    if table.num_rows != lines or not table.num_columns:  # two records on a line, no key
        return None
    table = table.combine_chunks()
    columns: dict[str, pa.Array] = {}
    objects: list[tuple] = []
    try:
        for name in table.column_names:
            _leaves(table[name].combine_chunks(), name, sep, columns, objects)
    except ValueError:
        return None
    for key, nulls in objects:  # a missing object is no column, `"key": null` is one
        null = rb'"%s"\s*:\s*null' % re.escape(key.encode())
        if nulls and ('"' in key or "\\" in key or re.search(null, data)):
            return None
    if not columns:
        return None
    order = _first_order(data, min(chunk_size, lines), set(columns), sep)
    if order is None:
        return None
    whole = pa.table([columns[c] for c in order], names=order)
    return [whole.slice(at, chunk_size) for at in range(0, whole.num_rows, chunk_size)]

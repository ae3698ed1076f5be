"""Map raw source rows into the canonical customer and order models, standardised.

The staged frame keeps each record's original source values (`source_values`, JSON)
beside the standardised ones, so every decision downstream can be traced back.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa

from custpipe import catalogue
from custpipe.config import (
    CUSTOMER_FIELDS,
    ORDER_FIELDS,
    ORDER_LINE_FIELDS,
    DatasetConfig,
    SourceConfig,
)
from custpipe.mapping.apply import MappingIssue, map_fields
from custpipe.standardize import (
    _util,
    clean_name,
    clean_text,
    company_name_key,
    fold_key,
    normalize_email,
    normalize_postcode,
    normalize_tax_id,
    to_e164,
    to_iso2,
)

# the staged frames' columns, derived from custpipe/catalogue.py
STAGED_CUSTOMER_COLUMNS: tuple[str, ...] = catalogue.staged_columns("customers")
STAGED_ORDER_COLUMNS: tuple[str, ...] = catalogue.staged_columns("orders")
STAGED_ORDER_LINE_COLUMNS: tuple[str, ...] = catalogue.staged_columns("order_lines")


def _start(raw: pd.DataFrame, dataset: DatasetConfig, source: SourceConfig, fields: tuple):
    """Map the fields; return (raw, mapped with every field, issues, output frame with ids)."""
    raw = raw.reset_index(drop=True)
    mapped, issues = map_fields(raw, dataset, source.name, source.timezone or "UTC")
    for field in fields:
        if field not in mapped:
            mapped[field] = None
    out = pd.DataFrame(
        {"source_system": source.name, "source_id": mapped["source_id"]}, index=raw.index
    )
    return raw, mapped, issues, out


def _source_values(raw: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    if any(rule.expr for rule in dataset.fields.values()):
        cols = list(raw.columns)  # an expression may read any column
    else:
        cols = [c for c in dataset.source_columns() if c in raw]
    if raw.empty:
        return pd.Series([], index=raw.index, dtype=object)
    # pandas' C JSON writer, one line per row: ~10x faster than json.dumps row by row
    lines = raw[cols].to_json(orient="records", lines=True, force_ascii=False).splitlines()
    return pd.Series(lines, index=raw.index, dtype=object)


def person_name_key(name: pd.Series) -> pd.Series:
    """Order-insensitive key of a person's full name ('Smith, John' == 'John Smith')."""
    tokens = clean_text(name.map(lambda v: v.replace(",", " ") if isinstance(v, str) else v))
    distinct = pd.Series(tokens.dropna().unique(), dtype=object)
    words = distinct.str.split(" ").explode()
    folded = fold_key(words)  # one vectorised pass over every distinct word
    keys = folded.dropna().groupby(level=0).agg(lambda parts: "".join(sorted(parts)))
    lookup = dict(zip(distinct, keys.reindex(distinct.index), strict=True))
    return tokens.map(lambda v: lookup.get(v) or None if v is not None else None)


def _full_person_name(given: pd.Series, family: pd.Series) -> pd.Series:
    both = given.notna() & family.notna()
    full = (given.astype(str) + " " + family.astype(str)).where(both, None)
    return full.where(full.notna(), given.where(given.notna(), family))


def _record_hash(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """16 hex digits per row; vectorised (one hex string sliced into fixed-width cells)."""
    hashed = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    digits = hashed.astype(">u8").tobytes().hex().encode("ascii")
    cells = np.frombuffer(digits, dtype="S16").astype(str).astype(object)
    return pd.Series(cells, index=frame.index, dtype=object)


# Above this many rows, staging splits the frame over the machine's cores.
PARALLEL_MIN_ROWS = int(os.environ.get("CUSTPIPE_PARALLEL_MIN_ROWS", "50000"))


def _serial_worker() -> None:
    _util.PARALLEL_MIN_VALUES = 1 << 62  # a worker never starts a pool of its own


def merge_issues(parts: list[list[MappingIssue]]) -> list[MappingIssue]:
    """Issues of several chunks as one list: counts added, example codes united."""
    merged: dict[tuple, MappingIssue] = {}
    for issue in (i for part in parts for i in part):
        key = (issue.source, issue.field, issue.column, issue.problem, issue.rule)
        if key in merged:
            old = merged[key]
            examples = tuple(dict.fromkeys(old.examples + issue.examples))[:5]
            merged[key] = replace(old, rows=old.rows + issue.rows, examples=examples)
        else:
            merged[key] = issue
    return list(merged.values())


def _as_arrow(result: tuple[pd.DataFrame, list[MappingIssue]]):
    """A worker's staged frame as an Arrow table (compact to send back and to insert); the
    frame itself when a column holds values Arrow cannot type (mixed types)."""
    frame, issues = result
    try:
        return pa.Table.from_pandas(frame, preserve_index=False), issues
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return frame, issues


def _stage_chunk(stager, arrow: bool, raw: pd.DataFrame, source: SourceConfig):
    result = stager(raw, source)
    return _as_arrow(result) if arrow else result


def _in_parallel(stager, raw: pd.DataFrame, source: SourceConfig, arrow: bool = False):
    """Run `stager` over one chunk of `raw` per core in forked workers (small frames: here).

    With `arrow`, the staged rows come back as one Arrow table when every chunk converts
    (workers send Arrow buffers, not millions of pickled Python strings, and the parent
    never holds them as pandas objects), else as one pandas frame.
    """
    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or len(raw) < PARALLEL_MIN_ROWS or "fork" not in mp.get_all_start_methods():
        return _stage_chunk(stager, arrow, raw, source)
    raw = raw.reset_index(drop=True)
    size = -(-len(raw) // workers)
    chunks = [raw.iloc[i : i + size] for i in range(0, len(raw), size)]
    with ProcessPoolExecutor(
        workers, mp_context=mp.get_context("fork"), initializer=_serial_worker
    ) as pool:
        stage_chunk = partial(_stage_chunk, stager, arrow)
        results = list(pool.map(stage_chunk, chunks, [source] * len(chunks)))
    return _concat([r[0] for r in results]), merge_issues([r[1] for r in results])


def _concat(parts: list) -> pd.DataFrame | pa.Table:
    """Staged chunks as one Arrow table when they are Arrow tables of compatible types (a
    column missing its values in one chunk is typed by the others), else one pandas frame."""
    if all(isinstance(p, pa.Table) for p in parts):
        try:
            return pa.concat_tables(parts, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column typed differently per chunk
            parts = [p.to_pandas() for p in parts]
    frames = [p.to_pandas() if isinstance(p, pa.Table) else p for p in parts]
    return pd.concat(frames, ignore_index=True)


def stage_customers(
    raw: pd.DataFrame, source: SourceConfig, arrow: bool = False
) -> tuple[pd.DataFrame | pa.Table, list[MappingIssue]]:
    """Raw customer rows of one source -> canonical, standardised staged rows (same count).

    Large frames are split into one chunk per core, staged in forked worker processes; with
    `arrow` the rows may come back as an Arrow table (see :func:`_in_parallel`).
    """
    staged, issues = _in_parallel(_stage_customers, raw, source, arrow)
    if isinstance(staged, pd.DataFrame):
        for col in ("tax_id_valid", "email_valid", "phone_valid", "postal_code_valid"):
            staged[col] = staged[col].astype("boolean")
    return staged, issues


def _stage_customers(
    raw: pd.DataFrame, source: SourceConfig
) -> tuple[pd.DataFrame, list[MappingIssue]]:
    dataset = source.customers
    raw, m, issues, out = _start(raw, dataset, source, CUSTOMER_FIELDS)
    out["country"] = to_iso2(clean_text(m["country"]))
    given, family = clean_text(m["given_name"]), clean_text(m["family_name"])
    name = clean_name(m["name"])
    name = name.where(name.notna(), clean_name(_full_person_name(given, family)))
    party = clean_text(m["party_type"]).map(lambda v: v.lower() if isinstance(v, str) else v)
    has_person_parts = given.notna() | family.notna()
    # a name the party-type inference could not read stays unknown (the row is quarantined)
    undecided = (
        m["mapping_errors"]
        .map(lambda e: isinstance(e, str) and "party_type_unknown:" in e)
        .astype(bool)
    )
    guess = has_person_parts.map({True: "person", False: "company"})
    party = party.where(party.notna() | undecided, guess)
    out["party_type"] = party
    out["name"] = name
    is_person = party == "person"
    keys = pd.Series([None] * len(name), index=name.index, dtype=object)
    keys[~is_person] = company_name_key(name[~is_person])
    keys[is_person] = person_name_key(name[is_person])
    out["name_key"] = keys
    out["given_name"], out["family_name"] = given, family
    out["birth_date"] = m["birth_date"]
    out["national_id"] = clean_text(m["national_id"])
    out["tax_id"], out["tax_id_valid"] = normalize_tax_id(clean_text(m["tax_id"]), out["country"])
    out["email"], out["email_valid"] = normalize_email(m["email"])
    out["phone"], out["phone_valid"] = to_e164(m["phone"], out["country"])
    out["street"], out["city"], out["region"] = (
        clean_text(m["street"]),
        clean_text(m["city"]),
        clean_text(m["region"]),
    )
    out["postal_code"], out["postal_code_valid"] = normalize_postcode(
        m["postal_code"], out["country"]
    )
    seg_rule = dataset.fields.get("segment")
    out["segment"] = _text(m["segment"])
    out["segment_raw"] = (
        raw[seg_rule.column]
        if seg_rule is not None and seg_rule.column
        else pd.Series([None] * len(raw), index=raw.index, dtype=object)
    )
    out["status"] = _text(m["status"])
    out["is_deleted"] = m["is_deleted"].map(lambda v: str(v).lower() in ("true", "1", "x", "yes"))
    out["created_at"] = pd.to_datetime(m["created_at"])
    out["source_updated_at"] = pd.to_datetime(m["source_updated_at"])
    out["mapping_errors"] = m["mapping_errors"]
    out["source_values"] = _source_values(raw, dataset)
    canon = [
        c
        for c in STAGED_CUSTOMER_COLUMNS
        if c not in ("source_values", "mapping_errors", "record_hash")
    ]
    out["record_hash"] = _record_hash(out, canon)
    for col in ("tax_id_valid", "email_valid", "phone_valid", "postal_code_valid"):
        out[col] = out[col].astype("boolean")
    return out[list(STAGED_CUSTOMER_COLUMNS)], issues


def _text(values: pd.Series) -> pd.Series:
    """Codes and numbers as cleaned text (a crosswalk may map to non-text values)."""
    return clean_text(values.map(lambda v: None if v is None else str(v)))


def _number(mapped: pd.DataFrame, field: str) -> pd.Series:
    """A numeric field as float (parsed under the number format and reported by map_fields)."""
    return pd.to_numeric(mapped[field], errors="coerce").astype(float)


def stage_orders(
    raw: pd.DataFrame, source: SourceConfig, arrow: bool = False
) -> tuple[pd.DataFrame | pa.Table, list[MappingIssue]]:
    """Raw order rows of one source -> canonical staged orders (same count), in parallel
    like :func:`stage_customers` when large."""
    return _in_parallel(_stage_orders, raw, source, arrow)


def _stage_orders(
    raw: pd.DataFrame, source: SourceConfig
) -> tuple[pd.DataFrame, list[MappingIssue]]:
    dataset = source.orders
    raw, m, issues, out = _start(raw, dataset, source, ORDER_FIELDS)
    out["order_number"] = clean_text(m["order_number"])
    out["customer_ref"] = clean_text(m["customer_ref"])
    out["order_date"] = pd.to_datetime(m["order_date"])
    out["amount"] = _number(m, "amount")
    out["currency"] = clean_text(m["currency"]).map(
        lambda v: v.upper() if isinstance(v, str) else v
    )
    out["status"] = _text(m["status"])
    out["source_values"] = _source_values(raw, dataset)
    out["mapping_errors"] = m["mapping_errors"]
    return out[list(STAGED_ORDER_COLUMNS)], issues


def stage_order_lines(
    raw: pd.DataFrame, source: SourceConfig, arrow: bool = False
) -> tuple[pd.DataFrame | pa.Table, list[MappingIssue]]:
    """Raw order-line rows of one source -> canonical staged lines (same count)."""
    return _in_parallel(_stage_order_lines, raw, source, arrow)


def _stage_order_lines(
    raw: pd.DataFrame, source: SourceConfig
) -> tuple[pd.DataFrame, list[MappingIssue]]:
    dataset = source.order_lines
    raw, m, issues, out = _start(raw, dataset, source, ORDER_LINE_FIELDS)
    out["order_number"] = clean_text(m["order_number"])
    out["line_number"] = _text(m["line_number"])
    out["product"] = clean_text(m["product"])
    out["quantity"] = _number(m, "quantity")
    out["line_amount"] = _number(m, "line_amount")
    out["source_values"] = _source_values(raw, dataset)
    out["mapping_errors"] = m["mapping_errors"]
    return out[list(STAGED_ORDER_LINE_COLUMNS)], issues

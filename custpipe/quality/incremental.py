"""Incremental validation: GX runs on the rows that changed; the rest carries forward.

One mechanism for every staged table a suite validates (a source's customers, the orders):
a :class:`Target` names the table, the rows (a source) and the id the suite sees.

**Which rows changed.** A row's outcome under a row-level rule depends on the values the
suite reads and on nothing else. So the unit of state is not a record but a *distinct set of
validated values*: ``quality.validated_rows`` keeps, per target (``scope``), one row per
64-bit hash of the values the suite reads, the id among them (``row_hash``), with the id,
how many staged rows carry exactly those values (``copies``) and two bit masks: ``failed``
(bit i: the suite's i-th row-level rule fails it) and ``skipped`` (bit i: the rule leaves it
out, GX's ``missing``). Every night one SQL scan hashes the target's rows (~0.7 s per
million); hashes missing from the state are the changed and new rows, state hashes no row has
any more are the deleted (or changed-away) rows. This does not rely on staging's
``raw_hash``/``run_id``: staging rewrites ``mapping_errors`` of unchanged rows
(``duplicate_id``), a mapping change restages rows whose validated values stay equal, and
two rows may share an id. A collision of two different value sets on one 64-bit hash (about
one in 10^13 per changed row at a million rows) would carry the old outcome; the periodic
full consistency run would report it.

**Row-level rules** (GX's per-row map rules and custpipe's custom ones, see
:data:`ROW_LEVEL_TYPES`): the changed value sets, one row each, are validated by GX against
a *derived suite* that holds only these rules. Per rule, the whole source's ``failed`` is the
sum of ``copies`` whose bit is set, ``missing`` likewise; ``evaluated`` is the source's row
count (GX's ``element_count``), and ``success`` is GX's own formula
(``(considered - failed) / considered >= mostly``, vacuously true when nothing is
considered), so ``mostly`` thresholds and the scorecard's evaluated / failed / pass rate
are those of a full run, warn rules included. The failing ids (quarantine, outcome) are the
distinct ids of state rows with the bit set. Each GX run is checked against the masks taken
from it: per rule, the skipped rows must equal GX's ``missing_count`` (an error otherwise).

**Set-level rules** are evaluated over the whole source in SQL, every night, with GX's
semantics: ``expect_column_values_to_be_unique`` (every row whose non-missing value occurs
more than once fails; ``failed_ids`` are their ids) and
``expect_compound_columns_to_be_unique`` (the same over the column tuple, rows filtered by
``ignore_row_if``), ``expect_table_row_count_to_be_between`` / ``_to_equal`` (``failed`` 0 or
1). The volume check, the mapping rules (``mapping_errors``) and the validation run's counts
are read from the staged table as before. A suite with any other rule (a table-shape rule,
an aggregate, a ``row_condition``, more than 64 row-level rules) is validated in full every
night, and the plan says why.

**A full validation** runs GX over every row with the real suite, as before, and rebuilds
the state from it (GX sees a row number as its id column, so each failing row is known even
when two rows share an id; the outcome's ids are mapped back). With ``plan.compare`` it
first computes the incremental result for the same staged rows (no Data Docs) and compares
quarantine, scorecard, validation run and per-row state with :func:`custpipe.incremental
.differences`.

**Data Docs on an incremental night** show a validation of the suite
``<suite>__changed_rows`` (the derived suite; its notes say that it holds the row-level
rules only, that the batch is the value sets changed since the last validation, and that the
figures of the whole source are in ``quality.scorecard``); a night without a change runs no
GX and builds no page. With ``include_values`` the pages show batch row numbers, not ids.

Fingerprint (:func:`fingerprint_parts`): the suite as read (its JSON with the lengths the
catalogue fills in), its name, the code of the quality modules and of the standardisers the
custom rules call, the versions of GX, phonenumbers and python-stdnum, and what the caller
adds (a source's mapping).
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from custpipe import incremental, warehouse
from custpipe.quality.gx_runner import (
    ExpectationOutcome,
    SuiteOutcome,
    required_columns,
    table_shape,
    validate_frame,
)

STAGE = "validate"
ROW_COLUMN = "_custpipe_row"  # GX's id column: the row's position in the frame
ROW_ID_KEY = "_custpipe_row_id"  # the frame's copy of the target's id
MAX_ROW_RULES = 64  # bits of the masks
CHANGED_SUFFIX = "__changed_rows"

#: GX's built-in map rules whose verdict on a row depends on that row only.
ROW_LEVEL_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_not_match_regex_list",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_not_match_like_pattern_list",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_match_json_schema",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_in_set",
        "expect_select_column_values_to_be_unique_within_record",
        "expect_multicolumn_sum_to_equal",
        # custpipe.quality.expectations (all per row)
        "expect_column_values_to_be_valid_e164",
        "expect_column_values_to_have_valid_tax_id",
        "expect_column_values_to_be_covered_by_crosswalk",
        "expect_company_tax_id_where_required",
        "expect_row_values_to_fit_published_columns",
        "expect_column_values_to_not_be_formula_payloads",
    }
)
UNIQUE_TYPES = frozenset(
    {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
)
ROW_COUNT_TYPES = frozenset(
    {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}
)

# code whose change alters validation outcomes (relative to the package folder)
_CODE = (
    "quality/validate.py",
    "quality/quarantine.py",
    "quality/gx_runner.py",
    "quality/expectations.py",
    "quality/published_length.py",
    "quality/incremental.py",
    "standardize/_util.py",
    "standardize/countries.py",
    "standardize/phones.py",
    "standardize/tax_ids.py",
    "catalogue.py",
)
_VERSIONED = ("great_expectations", "phonenumbers", "python-stdnum", "pandas")


@dataclass(frozen=True)
class Target:
    """A staged table (or part of one) that one suite validates."""

    scope: str  # the scorecard's source_system and the state's scope: a source, or 'orders'
    table: str
    where: str  # SQL selecting the target's rows
    params: tuple = ()
    id_sql: str = '"source_id"'  # the id column as the suite sees it
    id_column: str = "source_id"


def customers_target(source: str) -> Target:
    """A source's staged customers."""
    return Target(source, "staging.customers", "source_system = ?", (source,))


def orders_target() -> Target:
    """Every staged order, identified as `source_system:source_id` (ids are per system)."""
    return Target(
        "orders",
        "staging.orders",
        "TRUE",
        (),
        id_sql="source_system || ':' || coalesce(source_id, '')",
    )


def _rule_name(exp: dict) -> str:
    """The rule name GX's outcome carries (gx_runner._to_outcome)."""
    kwargs = exp.get("kwargs") or {}
    column = kwargs.get("column") or kwargs.get("column_A")
    if column is None and kwargs.get("column_list"):
        column = ",".join(map(str, kwargs["column_list"]))
    return (exp.get("meta") or {}).get("rule") or f"{exp['type']}:{column}"


def _column_of(exp: dict) -> str | None:
    kwargs = exp.get("kwargs") or {}
    column = kwargs.get("column") or kwargs.get("column_A")
    if column is None and kwargs.get("column_list"):
        column = ",".join(map(str, kwargs["column_list"]))
    return column


def _kind(exp: dict) -> str:
    kwargs = exp.get("kwargs") or {}
    if kwargs.get("row_condition"):
        return "unsupported"
    if any(isinstance(v, dict) and "$PARAMETER" in v for v in kwargs.values()):
        return "unsupported"
    kind = exp.get("type")
    if kind in ROW_LEVEL_TYPES:
        return "row"
    if kind in UNIQUE_TYPES:
        return "unique"
    if kind in ROW_COUNT_TYPES:
        return "row_count"
    return "unsupported"


def not_incremental(suite: dict) -> str | None:
    """Why a suite cannot be validated incrementally (None: it can)."""
    expectations = suite.get("expectations") or []
    odd = [f"{_rule_name(e)} ({e['type']})" for e in expectations if _kind(e) == "unsupported"]
    if odd:
        return (
            "the suite has rules incremental validation cannot split into rows and SQL "
            "aggregates: " + ", ".join(odd)
        )
    rows = sum(_kind(e) == "row" for e in expectations)
    if rows > MAX_ROW_RULES:
        return (
            f"the suite has {rows} row-level rules (incremental validation keeps "
            f"at most {MAX_ROW_RULES})"
        )
    return None


def _code_digest() -> str:
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha1()
    for name in _CODE:
        path = package / name
        digest.update(name.encode() + b"\x1f" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def fingerprint_parts(suite_name: str, suite: dict, **extra: object) -> dict[str, str]:
    """The parts whose change makes past validation outcomes meaningless (see module doc)."""
    versions = {}
    for dist in _VERSIONED:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return incremental.fingerprint(
        suite=json.dumps(suite, sort_keys=True, default=str),
        suite_name=suite_name,
        code=_code_digest(),
        libraries=versions,
        **extra,
    )


def plan_validation(
    con: duckdb.DuckDBPyConnection,
    target: Target,
    suite_name: str,
    suite: dict,
    schedule: incremental.Schedule,
    **extra: object,
) -> incremental.StagePlan:
    """How the target's validation runs tonight (stage 'validate', scope = target.scope)."""
    plan = incremental.plan_stage(
        con,
        STAGE,
        target.scope,
        fingerprint_parts(suite_name, suite, **extra),
        schedule,
    )
    if not plan.incremental and not plan.compare:
        return plan
    why = not_incremental(suite)
    if why:
        return replace(plan, mode=incremental.FULL, reason=why, compare=False)
    (kept,) = con.execute(
        "SELECT count(*) FROM quality.validated_rows WHERE scope = ?", [target.scope]
    ).fetchone()
    (rows,) = con.execute(
        f"SELECT count(*) FROM {target.table} WHERE {target.where}", list(target.params)
    ).fetchone()
    if kept == 0 and rows > 0 and plan.incremental:
        return replace(
            plan, mode=incremental.FULL, reason="no per-row validation state to continue from"
        )
    return plan


# --------------------------------------------------------------------------- reading rows


def suite_frame_columns(con: duckdb.DuckDBPyConnection, target: Target, suite: dict) -> list[str]:
    """The columns GX reads for the suite: the id and what its rules name (those the table
    has; a missing one is left for validate_frame to name), or every column for a suite
    with a table-shape rule."""
    have = list(con.execute(f"SELECT * FROM {target.table} LIMIT 0").df().columns)
    if any(table_shape(e) for e in suite.get("expectations") or []):
        return have
    wanted = dict.fromkeys([target.id_column, *required_columns(suite)])
    return [c for c in wanted if c in have or c == target.id_column]


def _select_list(target: Target, columns: list[str]) -> str:
    return ", ".join(
        f'{target.id_sql} AS "{c}"' if c == target.id_column else f'"{c}"' for c in columns
    )


def _hash_sql(target: Target, columns: list[str]) -> str:
    fields = ", ".join(
        f'"{c}" := {target.id_sql if c == target.id_column else chr(34) + c + chr(34)}'
        for c in columns
    )
    return f"hash(struct_pack({fields}))"


def hash_rows(con: duckdb.DuckDBPyConnection, target: Target, columns: list[str]) -> int:
    """Temp table `_cv_current` (row_hash, row_id, copies, rid: the first row's rowid) of the
    target's rows grouped by the hash of `columns`, in one scan; returns the row count."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _cv_current AS SELECT "
        f"{_hash_sql(target, columns)} AS row_hash, any_value({target.id_sql}) AS row_id, "
        f"count(*) AS copies, min(rowid) AS rid FROM {target.table} WHERE {target.where} "
        "GROUP BY row_hash",
        list(target.params),
    )
    return int(con.execute("SELECT coalesce(sum(copies), 0) FROM _cv_current").fetchone()[0])


def fetch_all(con: duckdb.DuckDBPyConnection, target: Target, columns: list[str]) -> pd.DataFrame:
    """Every row of the target with `columns` (the id as the suite sees it)."""
    return con.execute(
        f"SELECT {_select_list(target, columns)} FROM {target.table} WHERE {target.where}",
        list(target.params),
    ).df()


def fetch_rows(
    con: duckdb.DuckDBPyConnection, target: Target, columns: list[str], only_new: str | None
) -> pd.DataFrame:
    """The GX frame: `columns` plus row_hash; every row, or (`only_new` = scope) one row per
    value set the scope's state lacks (its first row, from `_cv_current`)."""
    listed = _select_list(target, columns)
    if only_new is None:
        sql = (
            f"SELECT {listed}, {_hash_sql(target, columns)} AS row_hash FROM {target.table} "
            f"WHERE {target.where} ORDER BY rowid"
        )
        return con.execute(sql, list(target.params)).df()
    sql = f"""
        WITH new AS (
            SELECT rid, row_hash FROM _cv_current
            WHERE row_hash NOT IN (SELECT row_hash FROM quality.validated_rows WHERE scope = ?))
        SELECT {listed}, new.row_hash FROM {target.table} t JOIN new ON t.rowid = new.rid
        ORDER BY new.rid
    """
    return con.execute(sql, [only_new]).df()


# --------------------------------------------------------------------------- masks


def _ignore_row_if(exp: dict) -> str | None:
    """The rule's ignore_row_if, its class default when the suite leaves it out."""
    from great_expectations.expectations.registry import get_expectation_impl

    kwargs = exp.get("kwargs") or {}
    if "ignore_row_if" in kwargs:
        return kwargs["ignore_row_if"]
    impl = get_expectation_impl(exp["type"])
    declared = getattr(impl, "model_fields", None) or getattr(impl, "__fields__", {})
    default = declared.get("ignore_row_if")
    return getattr(default, "default", None) if default is not None else None


def skipped_mask(frame: pd.DataFrame, exp: dict) -> np.ndarray:
    """Rows the rule leaves out (GX's missing): a missing value of a column rule (not of a
    not-null rule), a pair or row left out by ignore_row_if."""
    kwargs = exp.get("kwargs") or {}
    if exp["type"] == "expect_column_values_to_not_be_null":
        return np.zeros(len(frame), dtype=bool)
    if "column" in kwargs:
        return frame[kwargs["column"]].isna().to_numpy()
    if "column_A" in kwargs:
        a = frame[kwargs["column_A"]].isna().to_numpy()
        b = frame[kwargs["column_B"]].isna().to_numpy()
        return {
            "both_values_are_missing": a & b,
            "either_value_is_missing": a | b,
        }.get(_ignore_row_if(exp), np.zeros(len(frame), dtype=bool))
    missing = frame[list(kwargs["column_list"])].isna().to_numpy()
    rule = _ignore_row_if(exp)
    if rule == "all_values_are_missing":
        return missing.all(axis=1)
    if rule == "any_value_is_missing":
        return missing.any(axis=1)
    return np.zeros(len(frame), dtype=bool)


def masks(
    frame: pd.DataFrame, row_rules: list[dict], outcome: SuiteOutcome
) -> tuple[np.ndarray, np.ndarray]:
    """(failed, skipped) bit masks per frame row from a GX outcome whose ids are row numbers;
    raises when a rule's skipped rows differ from GX's missing count."""
    failed = np.zeros(len(frame), dtype=np.uint64)
    skipped = np.zeros(len(frame), dtype=np.uint64)
    by_rule = {o.rule: o for o in outcome.outcomes}
    for bit, exp in enumerate(row_rules):
        o = by_rule[_rule_name(exp)]
        rows = np.fromiter((int(i) for i in o.failed_ids), dtype=np.int64)
        skip = skipped_mask(frame, exp)
        if int(skip.sum()) != o.missing or len(rows) != o.failed:
            raise RuntimeError(
                f"suite {outcome.suite_name!r}, rule {o.rule!r}: GX counted {o.failed} failed "
                f"and {o.missing} skipped rows, the incremental state {len(rows)} and "
                f"{int(skip.sum())}: incremental validation cannot keep this rule"
            )
        failed[rows] |= np.uint64(1 << bit)
        skipped[skip] |= np.uint64(1 << bit)
    return failed, skipped


def state_frame(
    frame: pd.DataFrame, failed: np.ndarray, skipped: np.ndarray, run_id: str, at: datetime
) -> pd.DataFrame:
    """One row per value set of `frame` (row_hash, row_id, copies, failed, skipped)."""
    rows = pd.DataFrame(
        {
            "row_hash": frame["row_hash"].to_numpy(dtype=np.uint64),
            "row_id": frame[ROW_ID_KEY].to_numpy(dtype=object),
            "failed": failed,
            "skipped": skipped,
        }
    )
    grouped = rows.groupby("row_hash", sort=False).agg(
        row_id=("row_id", "first"),
        copies=("row_id", "size"),
        failed=("failed", "first"),
        failed_max=("failed", "max"),
        skipped=("skipped", "first"),
        skipped_max=("skipped", "max"),
    )
    odd = (grouped["failed"] != grouped["failed_max"]) | (
        grouped["skipped"] != grouped["skipped_max"]
    )
    if odd.any():
        raise RuntimeError("rows with equal validated values got different outcomes from GX")
    out = grouped.reset_index()[["row_hash", "row_id", "copies", "failed", "skipped"]]
    return out.assign(run_id=run_id, validated_at=at)


# --------------------------------------------------------------------------- GX runs


def derived_suite(suite_name: str, suite: dict, rules: list[dict]) -> dict:
    """The suite an incremental night hands GX: the row-level rules only, labelled."""
    derived = copy.deepcopy({k: v for k, v in suite.items() if k != "expectations"})
    derived["name"] = suite_name + CHANGED_SUFFIX
    derived["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, derived["name"]))
    derived["notes"] = (
        f"Incremental validation of suite {suite_name}: only the records whose validated "
        "values changed since the last validation (one row per distinct set of values), "
        "against its row-level rules. Set-level rules (uniqueness, row counts) and the "
        "figures of the whole source are in quality.scorecard; unchanged records keep their "
        "outcome."
    )
    expectations = []
    for exp in rules:
        exp = copy.deepcopy(exp)
        exp["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{derived['name']}/{exp['id']}"))
        expectations.append(exp)
    derived["expectations"] = expectations
    return derived


def _write_suite(folder: Path, suite: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{suite['name']}.json"
    text = json.dumps(suite, indent=2, ensure_ascii=False)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return folder


def run_gx(
    frame: pd.DataFrame,
    suite_name: str,
    expectations_dir: Path,
    gx_dir: Path,
    *,
    build_docs: bool,
    results_limit: int,
    include_values: bool,
    spark=None,
) -> SuiteOutcome:
    """validate_frame with each row's position as its id (failed_ids are row numbers);
    `spark`: gx_runner.OnSpark, large frames validated on Spark."""
    gx_frame = frame.drop(columns=["row_hash", ROW_ID_KEY], errors="ignore")
    gx_frame[ROW_COLUMN] = np.arange(len(gx_frame))
    return validate_frame(
        gx_frame,
        suite_name,
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        id_column=ROW_COLUMN,
        build_docs=build_docs,
        results_limit=results_limit,
        include_values=include_values,
        spark=spark,
    )


def with_ids(outcome: SuiteOutcome, ids: np.ndarray) -> SuiteOutcome:
    """The outcome with row numbers replaced by the rows' distinct non-null ids."""
    outcomes = []
    for o in outcome.outcomes:
        mapped = dict.fromkeys(str(ids[int(i)]) for i in o.failed_ids if not pd.isna(ids[int(i)]))
        outcomes.append(replace(o, failed_ids=tuple(mapped)))
    return replace(outcome, outcomes=tuple(outcomes))


# --------------------------------------------------------------------------- set-level SQL


def _null_sql(expr: str, column_type: str) -> str:
    if column_type.upper() in ("DOUBLE", "FLOAT", "REAL"):
        return f"({expr} IS NULL OR isnan({expr}))"
    return f"({expr} IS NULL)"


def _mostly_success(considered: int, unexpected: int, mostly: float | None) -> bool:
    """GX's verdict of a map rule (expectation._mostly_success and its vacuous cases)."""
    if considered == 0:
        return True
    return (float(considered) - float(unexpected)) / float(considered) >= (
        1 if mostly is None else mostly
    )


def set_level_outcome(
    con: duckdb.DuckDBPyConnection, target: Target, exp: dict, rows: int
) -> ExpectationOutcome:
    """A uniqueness or row-count rule over the whole target, in SQL, as GX would judge it."""
    kwargs = exp.get("kwargs") or {}
    meta = exp.get("meta") or {}
    base = dict(
        rule=_rule_name(exp),
        expectation_type=exp["type"],
        column=_column_of(exp),
        severity=meta.get("severity", "warn"),
    )
    if exp["type"] in ROW_COUNT_TYPES:
        if exp["type"] == "expect_table_row_count_to_equal":
            ok = rows == kwargs.get("value")
        else:
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            ok = (low is None or (rows > low if kwargs.get("strict_min") else rows >= low)) and (
                high is None or (rows < high if kwargs.get("strict_max") else rows <= high)
            )
        return ExpectationOutcome(**base, success=bool(ok), evaluated=rows, failed=int(not ok),
                                  failed_ids=())  # fmt: skip
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema || '.' || table_name = ?",
            [target.table],
        ).fetchall()
    )
    columns = [kwargs["column"]] if "column" in kwargs else list(kwargs["column_list"])
    exprs = [target.id_sql if c == target.id_column else f'"{c}"' for c in columns]
    nulls = [_null_sql(e, types.get(c, "")) for e, c in zip(exprs, columns, strict=True)]
    if "column" in kwargs:
        keep = f"NOT {nulls[0]}"
    else:
        rule = kwargs.get("ignore_row_if", _ignore_row_if(exp))
        keep = {
            "all_values_are_missing": "NOT (" + " AND ".join(nulls) + ")",
            "any_value_is_missing": "NOT (" + " OR ".join(nulls) + ")",
        }.get(rule, "TRUE")
    values = ", ".join(f"{e} AS _v{i}" for i, e in enumerate(exprs))
    part = ", ".join(f"_v{i}" for i in range(len(exprs)))
    found = con.execute(
        f"""
        WITH v AS (SELECT {target.id_sql} AS _id, {values}, {keep} AS _kept
                   FROM {target.table} WHERE {target.where}),
        d AS (SELECT _id, count(*) OVER (PARTITION BY {part}) AS n FROM v WHERE _kept)
        SELECT (SELECT count(*) FROM v WHERE _kept),
               (SELECT count(*) FROM d WHERE n > 1),
               (SELECT list(DISTINCT _id) FROM d WHERE n > 1 AND _id IS NOT NULL)
        """,
        list(target.params),
    ).fetchone()
    considered, unexpected, ids = int(found[0]), int(found[1]), found[2] or []
    ok = rows == 0 or _mostly_success(considered, unexpected, kwargs.get("mostly"))
    return ExpectationOutcome(
        **base,
        success=ok,
        evaluated=rows,
        failed=unexpected,
        failed_ids=tuple(sorted(map(str, ids))),
        missing=rows - considered,
    )


# --------------------------------------------------------------------------- assembling


def row_rules(suite: dict) -> list[dict]:
    """The suite's row-level rules in suite order (bit i of the masks = i-th rule)."""
    return [e for e in suite.get("expectations") or [] if _kind(e) == "row"]


def outcome_from_state(
    con: duckdb.DuckDBPyConnection,
    target: Target,
    suite_name: str,
    suite: dict,
    state: str,
    rows: int,
    docs_index: Path | None,
) -> SuiteOutcome:
    """The whole target's outcome: row-level rules from the state relation `state` (row_hash,
    row_id, copies, failed, skipped), set-level rules in SQL; in suite order."""
    rules = row_rules(suite)
    sums = ["coalesce(sum(copies), 0)"]
    for bit in range(len(rules)):
        sums.append(f"coalesce(sum(copies * ((failed >> {bit}) & 1)), 0)")
        sums.append(f"coalesce(sum(copies * ((skipped >> {bit}) & 1)), 0)")
    totals = [int(v) for v in con.execute(f"SELECT {', '.join(sums)} FROM {state}").fetchone()]
    if totals[0] != rows:
        raise RuntimeError(
            f"validation state of '{target.scope}' holds {totals[0]} rows, not {rows}"
        )
    ids: dict[int, list[str]] = {}
    if rules:
        found = con.execute(
            f"SELECT b.bit, list(DISTINCT s.row_id ORDER BY s.row_id) FROM {state} s, "
            f"range({len(rules)}) b(bit) WHERE s.failed <> 0 AND ((s.failed >> b.bit) & 1) = 1 "
            "AND s.row_id IS NOT NULL GROUP BY b.bit"
        ).fetchall()
        ids = {int(bit): [str(i) for i in listed] for bit, listed in found}
    outcomes, bit = [], 0
    for exp in suite.get("expectations") or []:
        if _kind(exp) != "row":
            outcomes.append(set_level_outcome(con, target, exp, rows))
            continue
        failed, missing = totals[1 + 2 * bit], totals[2 + 2 * bit]
        mostly = (exp.get("kwargs") or {}).get("mostly")
        outcomes.append(
            ExpectationOutcome(
                rule=_rule_name(exp),
                expectation_type=exp["type"],
                column=_column_of(exp),
                severity=(exp.get("meta") or {}).get("severity", "warn"),
                success=_mostly_success(rows - missing, failed, mostly),
                evaluated=rows,
                failed=failed,
                failed_ids=tuple(ids.get(bit, ())),
                missing=missing,
            )
        )
        bit += 1
    return SuiteOutcome(
        suite_name=suite_name,
        success=all(o.success for o in outcomes),
        outcomes=tuple(outcomes),
        docs_index=docs_index,
    )


@dataclass
class Evaluation:
    """A validation's outcome over the whole target and the per-row state it leaves."""

    outcome: SuiteOutcome
    rows: int
    changed: int  # value sets GX validated tonight
    state: pd.DataFrame | None = None  # full: the whole state; incremental: new value sets
    mode: str = incremental.FULL
    extra: dict = field(default_factory=dict)


def evaluate_full(
    con: duckdb.DuckDBPyConnection,
    target: Target,
    suite_name: str,
    suite: dict,
    expectations_dir: Path,
    gx_dir: Path,
    run_id: str,
    at: datetime,
    *,
    results_limit: int = 30,
    include_values: bool = False,
    spark=None,
) -> Evaluation:
    """GX over every row with the real suite (large frames on Spark with `spark`); the
    state rebuilt from its verdicts."""
    columns = suite_frame_columns(con, target, suite)
    rows = hash_rows(con, target, columns)
    frame = fetch_rows(con, target, columns, None)
    frame[ROW_ID_KEY] = frame[target.id_column]
    outcome = run_gx(
        frame,
        suite_name,
        expectations_dir,
        gx_dir,
        build_docs=True,
        results_limit=results_limit,
        include_values=include_values,
        spark=spark,
    )
    failed, skipped = masks(frame, row_rules(suite), outcome)
    state = state_frame(frame, failed, skipped, run_id, at)
    ids = frame[ROW_ID_KEY].to_numpy(dtype=object)
    return Evaluation(with_ids(outcome, ids), rows, len(frame), state)


def evaluate_incremental(
    con: duckdb.DuckDBPyConnection,
    target: Target,
    suite_name: str,
    suite: dict,
    gx_dir: Path,
    run_id: str,
    at: datetime,
    *,
    build_docs: bool = True,
    results_limit: int = 30,
    include_values: bool = False,
    spark=None,
) -> Evaluation:
    """GX over the value sets the state lacks (derived suite; large frames on Spark with
    `spark`); the rest from the state."""
    columns = suite_frame_columns(con, target, suite)
    rows = hash_rows(con, target, columns)
    frame = fetch_rows(con, target, columns, target.scope)
    frame[ROW_ID_KEY] = frame[target.id_column]
    rules = row_rules(suite)
    docs = None
    new = pd.DataFrame(
        columns=["row_hash", "row_id", "copies", "failed", "skipped", "run_id", "validated_at"]
    )
    if len(frame):
        derived = derived_suite(suite_name, suite, rules)
        folder = _write_suite(Path(gx_dir) / "changed_rows_suites", derived)
        outcome = run_gx(
            frame,
            derived["name"],
            folder,
            gx_dir,
            build_docs=build_docs,
            results_limit=results_limit,
            include_values=include_values,
            spark=spark,
        )
        docs = outcome.docs_index
        failed, skipped = masks(frame, rules, outcome)
        new = state_frame(frame, failed, skipped, run_id, at)
    new = new.astype({"row_hash": "uint64", "failed": "uint64", "skipped": "uint64"})
    with warehouse.registered(con, "_cv_new_frame", new):
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _cv_new AS SELECT row_hash, row_id, failed, skipped "
            "FROM _cv_new_frame"
        )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cv_state AS
        SELECT c.row_hash, c.row_id, c.copies, s.failed, s.skipped
        FROM _cv_current c JOIN quality.validated_rows s
          ON s.scope = ? AND s.row_hash = c.row_hash
        UNION ALL
        SELECT c.row_hash, c.row_id, c.copies, n.failed, n.skipped
        FROM _cv_current c JOIN _cv_new n USING (row_hash)
        """,
        [target.scope],
    )
    outcome = outcome_from_state(con, target, suite_name, suite, "_cv_state", rows, docs)
    return Evaluation(outcome, rows, len(frame), new, incremental.INCREMENTAL)


def store_state(
    con: duckdb.DuckDBPyConnection, target: Target, ev: Evaluation, run_id: str, at: datetime
) -> None:
    """Write the evaluation's per-row state (call inside the outputs' transaction)."""
    if ev.mode == incremental.FULL:
        con.execute("DELETE FROM quality.validated_rows WHERE scope = ?", [target.scope])
        warehouse.append_rows(con, "quality.validated_rows", ev.state.assign(scope=target.scope))
        return
    con.execute(
        "DELETE FROM quality.validated_rows WHERE scope = ? "
        "AND row_hash NOT IN (SELECT row_hash FROM _cv_current)",
        [target.scope],
    )
    con.execute(
        "UPDATE quality.validated_rows s SET copies = c.copies FROM _cv_current c "
        "WHERE s.scope = ? AND s.row_hash = c.row_hash AND s.copies <> c.copies",
        [target.scope],
    )
    con.execute(
        "INSERT INTO quality.validated_rows BY NAME SELECT ? AS scope, c.row_hash, c.row_id, "
        "c.copies, n.failed, n.skipped, ? AS run_id, ? AS validated_at "
        "FROM _cv_current c JOIN _cv_new n USING (row_hash)",
        [target.scope, run_id, at],
    )


STATE_COLUMNS = ("row_hash", "row_id", "copies", "failed", "skipped")


def state_differences(
    con: duckdb.DuckDBPyConnection, target: Target, full: Evaluation
) -> dict[str, int]:
    """Rows in which the state an incremental night would leave (`_cv_state`, built by
    evaluate_incremental) differs from the one a full validation rebuilt."""
    listed = ", ".join(STATE_COLUMNS)
    frame = full.state[list(STATE_COLUMNS)].astype(
        {"row_hash": "uint64", "failed": "uint64", "skipped": "uint64"}
    )
    with warehouse.registered(con, "_cv_full_state", frame):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _cv_full AS SELECT {listed} FROM _cv_full_state")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _cv_inc AS SELECT {listed} FROM _cv_state")
    return incremental.differences(con, {"quality.validated_rows": ("_cv_full", "_cv_inc")})

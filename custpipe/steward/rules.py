"""The Rules pages' core: every suite with its latest validation and each rule's verdict.

custpipe's own, offline Data Docs. A suite's rules — severity, description (what is wrong and
how to fix it at the source), columns — come from its file in ``expectations/``; the
figures of its latest validation from where custpipe keeps them:

- a source's staged suite: ``quality.validation_runs`` (rows, records quarantined, blocked)
  and ``quality.scorecard`` (per rule; with the mapping rules that held records back) — the
  whole source's figures, also on an incremental night; the business date from
  ``ops.stage_runs``;
- the ``orders`` suite: ``quality.scorecard`` (pseudo-source ``orders``);
- the raw extract suites and ``golden_customers``: the latest full validation stored by GX
  under the data folder's ``gx/validations/`` (scrubbed of row values; only its counts and
  verdicts are read here in any case).

A suite is **blocked** only when a block rule failed (and only where a failed block rule
stops something: the ``orders`` suite never blocks); else "N records quarantined",
"warnings" or "passed". Counts and rule texts only: no customer value is read or returned.
No web import.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from custpipe.quality.gx_runner import (
    SEVERITIES,
    SuiteDefinitionError,
    load_suite_names,
    read_suite,
)
from custpipe.quality.quarantine import describe_mapping_rule

#: order of rule states on a page: the worst first
STATES = ("blocked", "failed", "quarantined", "warning", "passed", "not run")
#: how long after a GX validation a stage of the same run records itself (for its date)
_SAME_RUN_WITHIN = timedelta(hours=12)


@dataclass(frozen=True)
class RuleStatus:
    """One rule of a suite and its verdict in the suite's latest validation."""

    name: str
    severity: str  # block | quarantine | warn
    description: str  # what is wrong and how to fix it at the source
    columns: tuple[str, ...]
    expectation_type: str
    mostly: float | None = None
    evaluated: int | None = None  # None: not run in the latest validation
    failed: int | None = None
    success: bool | None = None
    enforced: bool = True  # block stops, quarantine holds back (not in the orders suite)
    mapping: bool = False  # a mapping rule (staging), not a rule of the suite file

    @property
    def pass_rate(self) -> float | None:
        """Share of the evaluated rows that passed (None: not run)."""
        if self.evaluated is None or self.failed is None:
            return None
        if not self.evaluated:
            return 1.0 if self.success else 0.0
        return 1.0 - self.failed / self.evaluated

    @property
    def state(self) -> str:
        """blocked | failed (a block or quarantine rule that is reported only, as the orders
        suite's) | quarantined | warning | passed | not run."""
        if self.success is None:
            return "not run"
        if self.success:
            return "passed"
        if self.severity == "warn":
            return "warning"
        if not self.enforced:
            return "failed"
        return "blocked" if self.severity == "block" else "quarantined"


@dataclass(frozen=True)
class SuiteStatus:
    """A suite, what it checks, and its latest validation."""

    key: str  # the page's address: the suite name (suite.source when it validates several)
    name: str
    kind: str  # staged | raw | golden | orders | other
    scope: str | None  # the source it validates (None: golden records, orders)
    purpose: str
    rules: tuple[RuleStatus, ...]
    validated_at: datetime | None = None  # UTC
    business_date: date | None = None
    rows: int | None = None
    quarantined: int | None = None  # records held back (staged suites)
    blocks: bool = True
    basis: str = ""  # where the figures come from
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def validated(self) -> bool:
        """True once a validation of the suite is known."""
        return self.validated_at is not None or self.business_date is not None

    @property
    def state(self) -> str:
        """blocked | quarantined | warnings | passed | not validated."""
        if not self.validated:
            return "not validated"
        states = {r.state for r in self.rules}
        if "blocked" in states:
            return "blocked"
        if self.quarantined or "quarantined" in states:
            return "quarantined"
        if states & {"warning", "failed"}:
            return "warnings"
        return "passed"

    @property
    def state_text(self) -> str:
        """The state in words, e.g. '12 records quarantined'."""
        if self.state == "quarantined" and self.quarantined is not None:
            return f"{self.quarantined} record{'s' * (self.quarantined != 1)} quarantined"
        if self.state == "not validated":
            return "not validated yet"
        return self.state

    def counts(self) -> dict[str, int]:
        """Rules per state, e.g. {'passed': 12, 'warning': 2}."""
        out: dict[str, int] = {}
        for rule in self.rules:
            out[rule.state] = out.get(rule.state, 0) + 1
        return {s: out[s] for s in STATES if s in out}


def suite_kind(name: str) -> str:
    """staged | raw | golden | orders | other, by the suite's name."""
    if name == "golden_customers":
        return "golden"
    if name == "orders":
        return "orders"
    if name.startswith("raw_"):
        return "raw"
    if name == "staged_customers" or name.startswith("staged_customers_"):
        return "staged"
    return "other"


def _columns(exp: dict[str, Any]) -> tuple[str, ...]:
    kwargs = exp.get("kwargs") or {}
    cols = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
    for key in ("column_list", "column_set"):
        cols += [str(c) for c in kwargs.get(key) or []]
    return tuple(cols)


def suite_rules(suite: dict[str, Any], enforced: bool = True) -> tuple[RuleStatus, ...]:
    """The rules of a suite file (as read by gx_runner.read_suite), not yet validated."""
    rules = []
    for exp in suite.get("expectations") or []:
        meta = exp.get("meta") or {}
        kwargs = exp.get("kwargs") or {}
        cols = _columns(exp)
        rules.append(
            RuleStatus(
                name=meta.get("rule") or f"{exp.get('type')}:{','.join(cols)}",
                severity=meta.get("severity", "warn"),
                description=meta.get("description", ""),
                columns=cols,
                expectation_type=str(exp.get("type", "")),
                mostly=kwargs.get("mostly"),
                enforced=enforced,
            )
        )
    return tuple(rules)


def verdict(rule: RuleStatus, evaluated: int, failed: int) -> bool:
    """Whether a rule passed, from its scorecard counts: no failed row, or (a `mostly` rule)
    a pass rate at or above `mostly` — GX's formula for custpipe's `mostly` rules, which are
    not-null rules (they skip no row)."""
    if not failed:
        return True
    if rule.mostly is None or not evaluated:
        return False
    return 1.0 - failed / evaluated >= float(rule.mostly)


def _with(rule: RuleStatus, **changes: Any) -> RuleStatus:
    return replace(rule, **changes)


# --- staged suites and orders: the warehouse -----------------------------------------------


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
            "AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _business_date(con: duckdb.DuckDBPyConnection, run_id: str) -> date | None:
    """The business date of a run (every stage of a run records the same one)."""
    if not _table_exists(con, "ops.stage_runs"):
        return None
    row = con.execute(
        "SELECT max(business_date) FROM ops.stage_runs WHERE run_id = ?", [run_id]
    ).fetchone()
    return row[0] if row else None


def _scorecard_rows(con: duckdb.DuckDBPyConnection, run_id: str, scope: str) -> list[tuple]:
    return con.execute(
        "SELECT rule, severity, evaluated, failed FROM quality.scorecard WHERE run_id = ? "
        "AND source_system = ? AND rule NOT LIKE 'recon:%' ORDER BY rule",
        [run_id, scope],
    ).fetchall()


def _apply_scorecard(
    rules: tuple[RuleStatus, ...], rows: list[tuple], run_blocked: bool | None
) -> tuple[RuleStatus, ...]:
    """The suite's rules with the run's counts; mapping rules that held records appended.

    `run_blocked` (quality.validation_runs: not success) decides the block rules: False
    means none of them failed, whatever its counts."""
    by_rule = {r[0]: r for r in rows}
    out = []
    for rule in rules:
        row = by_rule.pop(rule.name, None)
        if row is None:
            out.append(rule)
            continue
        evaluated, failed = int(row[2] or 0), int(row[3] or 0)
        success = verdict(rule, evaluated, failed)
        if rule.severity == "block" and run_blocked is False:
            success = True
        out.append(_with(rule, evaluated=evaluated, failed=failed, success=success))
    for name, severity, evaluated, failed in by_rule.values():
        if not name.startswith("mapping:"):
            continue  # a rule no longer in the suite file
        _, _, what = name.partition(":")
        field_part = what.partition(":")[2]
        out.append(
            RuleStatus(
                name=name,
                severity=severity or "quarantine",
                description=describe_mapping_rule(what),
                columns=(field_part,) if field_part else (),
                expectation_type="mapping rule (staging)",
                evaluated=int(evaluated or 0),
                failed=int(failed or 0),
                success=not failed,
                mapping=True,
            )
        )
    return tuple(out)


def staged_status(
    con: duckdb.DuckDBPyConnection,
    key: str,
    name: str,
    suite: dict[str, Any],
    source: str,
    max_quarantine_rate: float = 0.2,
) -> SuiteStatus:
    """A source's staged suite with its latest validation (quality.validation_runs); notes
    say when the night was stopped by a check that is no rule of the suite (the volume
    check, more than `max_quarantine_rate` of the rows quarantined)."""
    rules = suite_rules(suite)
    base = SuiteStatus(
        key, name, "staged", source, _purpose(suite), rules,
        basis="quality.validation_runs and quality.scorecard: the whole source",
    )  # fmt: skip
    if not _table_exists(con, "quality.validation_runs"):
        return base
    run = con.execute(
        "SELECT run_id, rows, quarantined, success, volume_ok, validated_at "
        "FROM quality.validation_runs WHERE source_system = ? AND suite = ? "
        "ORDER BY validated_at DESC LIMIT 1",
        [source, name],
    ).fetchone()
    if run is None:
        return base
    run_id, rows, quarantined, success, volume_ok, validated_at = run
    notes = []
    if volume_ok is False:
        notes.append(
            "The volume check stopped this night: the source lost more of its rows than "
            "allowed since its baseline (not a rule of this suite)."
        )
    if rows and quarantined / rows > max_quarantine_rate:
        notes.append(
            f"More than {max_quarantine_rate:.0%} of the rows were quarantined: a systemic "
            "problem, so the check suite_passes stopped this night (the mapping or the export "
            "is likely broken)."
        )
    return _replace_suite(
        base,
        rules=_apply_scorecard(rules, _scorecard_rows(con, run_id, source), not success),
        validated_at=validated_at,
        business_date=_business_date(con, run_id),
        rows=rows,
        quarantined=quarantined,
        notes=tuple(notes),
    )


def orders_status(con: duckdb.DuckDBPyConnection, suite: dict[str, Any]) -> SuiteStatus:
    """The orders suite with its latest validation (scorecard rows of pseudo-source 'orders');
    its block rules never stop the publish."""
    rules = suite_rules(suite, enforced=False)
    base = SuiteStatus(
        "orders", "orders", "orders", None, _purpose(suite), rules, blocks=False,
        basis="quality.scorecard: every staged order",
        notes=("The orders suite's failed rules are reported only (the warning check "
               "orders_suite_passes): no order is held back and nothing is blocked — order "
               "problems are findings for reconciliation.",),
    )  # fmt: skip
    names = [r.name for r in rules]
    if not names or not _table_exists(con, "quality.scorecard"):
        return base
    run = con.execute(
        "SELECT run_id, min(run_at) FROM quality.scorecard WHERE source_system = 'orders' "
        "AND list_contains(?, rule) GROUP BY run_id ORDER BY 2 DESC LIMIT 1",
        [names],
    ).fetchone()
    if run is None:
        return base
    rows = _scorecard_rows(con, run[0], "orders")
    return _replace_suite(
        base,
        rules=_apply_scorecard(rules, rows, None),
        validated_at=run[1],
        business_date=_business_date(con, run[0]),
        rows=max((int(r[2] or 0) for r in rows), default=None),
    )


# --- raw and golden suites: the stored GX results ------------------------------------------


def latest_gx_result(gx_dir: Path, suite_name: str) -> dict[str, Any] | None:
    """The newest stored GX validation result of `suite_name` (a full validation: an
    incremental night stores its changed rows under `<suite>__changed_rows`), or None."""
    folder = Path(gx_dir) / "validations" / suite_name
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*/*/*.json"), key=lambda p: p.parent.name)
    for path in reversed(files):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a result being written or pruned: the one before it
    return None


def gx_counts(result: dict[str, Any]) -> tuple[dict[str, tuple[bool, int, int]], int | None]:
    """({rule: (success, evaluated, failed)}, rows) of a stored GX result — its counts and
    verdicts only (what else it holds, values included when enabled, is never read).
    Table rules count 0 or 1 failure over the batch's rows, as gx_runner does."""
    rows = None
    found: dict[str, tuple[bool, int | None, int | None]] = {}
    for r in result.get("results") or []:
        config = r.get("expectation_config") or {}
        meta = config.get("meta") or {}
        kwargs = config.get("kwargs") or {}
        rule = meta.get("rule") or f"{config.get('type')}:{kwargs.get('column')}"
        res = r.get("result") or {}
        success = bool(r.get("success"))
        if res.get("unexpected_count") is not None:
            evaluated = int(res.get("element_count") or 0)
            rows = max(rows or 0, evaluated)
            found[rule] = (success, evaluated, int(res["unexpected_count"]))
        else:
            found[rule] = (success, None, 0 if success else 1)
    return (
        {k: (s, (rows or 0) if e is None else e, f) for k, (s, e, f) in found.items()},
        rows,
    )


def _result_time(result: dict[str, Any]) -> datetime | None:
    stamp = (result.get("meta") or {}).get("validation_time") or (
        (result.get("meta") or {}).get("run_id") or {}
    ).get("run_time")
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=None) - (moment.utcoffset() or timedelta())


def _date_of_run_at(con: duckdb.DuckDBPyConnection, moment: datetime) -> date | None:
    """The business date of the run a GX validation at `moment` belonged to: that of the
    first stage the run recorded after it (within hours), if any."""
    if not _table_exists(con, "ops.stage_runs"):
        return None
    row = con.execute(
        "SELECT business_date FROM ops.stage_runs WHERE recorded_at >= ? AND recorded_at < ? "
        "ORDER BY recorded_at LIMIT 1",
        [moment, moment + _SAME_RUN_WITHIN],
    ).fetchone()
    return row[0] if row else None


def gx_status(
    con: duckdb.DuckDBPyConnection | None,
    gx_dir: Path,
    key: str,
    name: str,
    kind: str,
    scope: str | None,
    suite: dict[str, Any],
) -> SuiteStatus:
    """A suite validated from its latest stored GX result (raw extracts, golden records)."""
    rules = suite_rules(suite)
    notes = []
    if kind == "raw":
        notes.append(
            "A failed block rule rejects the night's extract of the source: it is never "
            "staged (the check raw_shape)."
        )
    if kind == "golden":
        notes.append(
            "Figures of the last full validation of the golden records; an incremental night "
            "validates only the changed ones (their outcome is in the night's check "
            "golden_suite_passes)."
        )
    base = SuiteStatus(
        key, name, kind, scope, _purpose(suite), rules,
        basis="the last validation GX stored (counts only)", notes=tuple(notes),
    )  # fmt: skip
    result = latest_gx_result(gx_dir, name)
    if result is None:
        return base
    counts, rows = gx_counts(result)
    validated = []
    for rule in rules:
        if rule.name in counts:
            success, evaluated, failed = counts[rule.name]
            rule = _with(rule, success=success, evaluated=evaluated, failed=failed)
        validated.append(rule)
    moment = _result_time(result)
    return _replace_suite(
        base,
        rules=tuple(validated),
        validated_at=moment,
        business_date=_date_of_run_at(con, moment) if con is not None and moment else None,
        rows=rows,
    )


# --- every suite -----------------------------------------------------------------------------


def _purpose(suite: dict[str, Any]) -> str:
    return str((suite.get("meta") or {}).get("purpose") or "")


def _replace_suite(suite: SuiteStatus, **changes: Any) -> SuiteStatus:
    return replace(suite, **changes)


def _staged_scopes(name: str, sources: Sequence[str], suite_names: list[str]) -> list[str]:
    """The configured sources a staged suite validates (custpipe.quality.validate.suite_for)."""
    if name == "staged_customers":
        return [s for s in sources if f"staged_customers_{s}" not in suite_names]
    source = name.removeprefix("staged_customers_")
    return [source] if source in sources else []


def suites(
    con: duckdb.DuckDBPyConnection | None,
    expectations_dir: Path,
    gx_dir: Path,
    sources: Sequence[str],
    max_quarantine_rate: float = 0.2,
) -> list[SuiteStatus]:
    """Every suite of `expectations_dir` with its latest validation, staged suites first
    (one entry per source a shared suite validates); `con` None: no warehouse yet;
    `max_quarantine_rate`: quality.max_quarantine_rate of the pipeline."""
    names = load_suite_names(expectations_dir)
    out: list[SuiteStatus] = []
    for name in names:
        try:
            suite = read_suite(expectations_dir, name)
        except SuiteDefinitionError as exc:
            out.append(SuiteStatus(name, name, suite_kind(name), None, "", (), notes=(str(exc),)))
            continue
        kind = suite_kind(name)
        if kind == "staged":
            scopes = _staged_scopes(name, sources, names)
            if con is None or not scopes:
                note = () if scopes else ("No configured source uses this suite.",)
                out.append(
                    SuiteStatus(
                        name, name, kind, None, _purpose(suite), suite_rules(suite), notes=note
                    )  # fmt: skip
                )
            for source in scopes if con is not None else []:
                key = name if len(scopes) == 1 else f"{name}.{source}"
                out.append(staged_status(con, key, name, suite, source, max_quarantine_rate))
        elif kind == "orders":
            out.append(
                orders_status(con, suite) if con is not None
                else SuiteStatus(name, name, kind, None, _purpose(suite),
                                 suite_rules(suite, enforced=False), blocks=False)
            )  # fmt: skip
        else:
            scope = name.removeprefix("raw_") if kind == "raw" else None
            out.append(gx_status(con, gx_dir, name, name, kind, scope, suite))
    order = {"staged": 0, "raw": 1, "golden": 2, "orders": 3, "other": 4}
    return sorted(out, key=lambda s: (order[s.kind], s.key))


def suite(
    con: duckdb.DuckDBPyConnection | None,
    expectations_dir: Path,
    gx_dir: Path,
    sources: Sequence[str],
    key: str,
) -> SuiteStatus | None:
    """The suite whose page address is `key` (None: no such suite)."""
    return next((s for s in suites(con, expectations_dir, gx_dir, sources) if s.key == key), None)


def severity_order(rule: RuleStatus) -> tuple[int, int, str]:
    """Sort key: block, quarantine, warn; within each the worst state first."""
    sev = SEVERITIES.index(rule.severity) if rule.severity in SEVERITIES else len(SEVERITIES)
    return (sev, STATES.index(rule.state), rule.name)


def suite_key_for(source: str, expectations_dir: Path, sources: Sequence[str]) -> str | None:
    """The Rules page address of the suite that validates `source`'s staged customers
    ('orders' for the pseudo-source of the orders; None: no such suite)."""
    names = load_suite_names(expectations_dir)
    if source == "orders":
        return "orders" if "orders" in names else None
    own = f"staged_customers_{source}"
    if own in names:
        return own
    if "staged_customers" not in names:
        return None
    shared = _staged_scopes("staged_customers", sources, names)
    return "staged_customers" if len(shared) <= 1 else f"staged_customers.{source}"

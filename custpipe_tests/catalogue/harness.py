"""A small, fast harness for the bad-input catalogue: one hand-made source, the core functions.

A case runs on a deployment of ONE source (`hostile`: a CSV of customers and a CSV of orders,
or whatever the case writes instead) whose first night staged a baseline of good rows. The
case then writes its input and runs one more night through the same core functions the
Dagster assets call (extract -> raw suite -> stage -> validate), and the answer is checked
against the case's expectation, then conservation is checked.
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from custpipe import gates, warehouse
from custpipe.config import load_source
from custpipe.mapping.stage import stage_source
from custpipe.quality import validate as validate_module
from custpipe.quality.gx_runner import validate_frame as _validate_frame
from custpipe.quality.validate import validate_landing, validate_source
from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings
from custpipe.sources.extract import extract_dataset, read_landing_table

SOURCE = "hostile"
BASE_DAY = date(2026, 11, 26)
DAY = date(2026, 11, 27)
CUSTOMER_COLUMNS = [
    "id",
    "name",
    "kind",
    "email",
    "phone",
    "street",
    "city",
    "zip",
    "country",
    "vat_id",
    "segment",
    "updated_at",
]
ORDER_COLUMNS = ["order_no", "customer", "order_date", "amount", "currency", "status"]
MAX_VOLUME_DROP = 0.2  # the QualityConfig defaults the quality asset applies
MAX_QUARANTINE_RATE = 0.2

BASE_SOURCE: dict[str, Any] = {
    "description": "the bad-input catalogue's hand-made source",
    "customers": {
        "reader": {"kind": "csv", "path": "{sources}/hostile/customers.csv"},
        "id": "id",
        "fields": {
            "name": "name",
            "party_type": {"column": "kind", "crosswalk": {"C": "company", "P": "person"}},
            "email": "email",
            "phone": "phone",
            "street": "street",
            "city": "city",
            "postal_code": "zip",
            "country": "country",
            "tax_id": "vat_id",
            "segment": {"column": "segment", "crosswalk": {"VIP": "A", "Standard": "B"}},
            "source_updated_at": "updated_at",
        },
    },
    "orders": {
        "reader": {"kind": "csv", "path": "{sources}/hostile/orders.csv"},
        "id": "order_no",
        "fields": {
            "order_number": "order_no",
            "customer_ref": "customer",
            "order_date": "order_date",
            "amount": "amount",
            "currency": "currency",
            "status": "status",
        },
    },
}

_CITIES = ["Berlin", "Hamburg", "München", "Köln", "Frankfurt", "Stuttgart", "Leipzig", "Bremen"]


def good_customer(i: int) -> dict[str, str]:
    """A clean German company row (id G01, G02, ...)."""
    return {
        "id": f"G{i:02d}",
        "name": f"Muster{chr(64 + i)} Maschinenbau GmbH",
        "kind": "C",
        "email": f"einkauf{i}@muster{i}.de",
        "phone": f"+49 30 12345{i:02d}",
        "street": f"Hauptstraße {i}",
        "city": _CITIES[i % len(_CITIES)],
        "zip": f"{10115 + i}",
        "country": "DE",
        "vat_id": "DE136695976",
        "segment": "VIP" if i % 2 else "Standard",
        "updated_at": f"2026-11-{i + 1:02d}T10:00:00",
    }


GOOD_CUSTOMERS = [good_customer(i) for i in range(1, 10)]
GOOD_IDS = [r["id"] for r in GOOD_CUSTOMERS]


def good_order(i: int) -> dict[str, str]:
    """A clean order of customer G0i."""
    return {
        "order_no": f"O{i:02d}",
        "customer": f"G{i:02d}",
        "order_date": f"2026-11-{i + 1:02d}",
        "amount": f"{100 * i}.50",
        "currency": "EUR",
        "status": "open",
    }


GOOD_ORDERS = [good_order(i) for i in range(1, 4)]


def bad(row_id: str, **values: str | None) -> dict[str, str | None]:
    """A customer row like the good ones, with `values` changed (None: empty cell)."""
    row = dict(good_customer(5), id=row_id, name=f"Fall {row_id} Handels GmbH")
    row.update(values)
    return row


def bad_order(order_no: str, **values: str | None) -> dict[str, str | None]:
    """An order row like the good ones, with `values` changed."""
    row = dict(good_order(1), order_no=order_no)
    row.update(values)
    return row


def csv_text(rows: list[dict], columns: list[str], delimiter: str = ",", newline: str = "\n"):
    """Rows as CSV text (quoted where needed)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, delimiter=delimiter, lineterminator=newline)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@dataclass
class Night:
    """What one night of the harness did."""

    run_id: str
    rejected: list[str] = field(default_factory=list)  # raw-suite block rules
    blocked: list[str] = field(default_factory=list)  # staged-suite block rules (+ volume)
    issues: list = field(default_factory=list)  # MappingIssue of every dataset
    rows: int = 0
    landing: dict[str, Path] = field(default_factory=dict)


class Bench:
    """One catalogue case's deployment, in `root`."""

    def __init__(self, root: Path, monkeypatch=None):
        self.root = root
        self.monkeypatch = monkeypatch
        self.settings = Settings(root / "config", root / "data", root / "expectations")
        self.settings.expectations_dir.mkdir(parents=True)
        for suite in ("staged_customers", "orders"):
            shutil.copy(DEFAULT_EXPECTATIONS_DIR / f"{suite}.json", self.settings.expectations_dir)
        self.dir = self.settings.sources_dir / SOURCE
        self.dir.mkdir(parents=True)
        (self.settings.config_dir / "sources").mkdir(parents=True)
        self.source: dict[str, Any] = copy.deepcopy(BASE_SOURCE)
        self.nights = 0

    # --- inputs -------------------------------------------------------------------------
    @property
    def customers_path(self) -> Path:
        return self.dir / "customers.csv"

    def write_customers(self, extra: list[dict], good: bool | list[dict] = True, **fmt) -> Path:
        """The customers CSV: the good rows (unless `good` is False; or rows given) + `extra`."""
        rows = (good if isinstance(good, list) else GOOD_CUSTOMERS if good else []) + extra
        encoding = fmt.pop("encoding", "utf-8")
        text = csv_text(rows, CUSTOMER_COLUMNS, **fmt)
        self.customers_path.write_bytes(text.encode(encoding))
        return self.customers_path

    def write_orders(self, extra: list[dict], good: list[dict] | None = None, **fmt) -> Path:
        """The orders CSV: the good orders (or `good`) plus `extra`."""
        path = self.dir / "orders.csv"
        rows = (GOOD_ORDERS if good is None else good) + extra
        path.write_text(csv_text(rows, ORDER_COLUMNS, **fmt), encoding="utf-8")
        return path

    def write_jsonl(self, lines: list[str], name: str = "customers.jsonl", raw: bytes = b""):
        """A JSON Lines customers file: the good rows as JSON, then `lines` as written."""
        path = self.dir / name
        good = [json.dumps(r, ensure_ascii=False) for r in GOOD_CUSTOMERS]
        path.write_bytes(("\n".join(good + lines) + "\n").encode("utf-8") + raw)
        self.reader(kind="jsonl", path=f"{{sources}}/{SOURCE}/{name}")
        return path

    def reader(self, dataset: str = "customers", **changes) -> None:
        """Change the reader settings of a dataset."""
        self.source[dataset]["reader"].update(changes)

    def rule(self, field_name: str, rule: Any, dataset: str = "customers") -> None:
        """Set the mapping rule of a canonical field."""
        self.source[dataset]["fields"][field_name] = rule

    # --- running ------------------------------------------------------------------------
    def source_file(self) -> Path:
        path = self.settings.config_dir / "sources" / f"{SOURCE}.yaml"
        path.write_text(yaml.safe_dump(self.source, allow_unicode=True), encoding="utf-8")
        return path

    def night(self, day: date = DAY, validate: bool = True) -> Night:
        """One night through the core functions, in the order the Dagster assets run them."""
        self.nights += 1
        run_id = f"run-{self.nights}"
        night = Night(run_id)
        source = load_source(self.source_file())
        for name in source.datasets():
            result = extract_dataset(source, name, self.settings, day)
            night.landing[name] = result.path
        outcome, _ = validate_landing(self.settings, source, night.landing["customers"])
        if outcome is not None and outcome.failures("block"):
            night.rejected = [o.rule for o in outcome.failures("block")]
            return night
        now = datetime.now(UTC).replace(tzinfo=None)
        if self.monkeypatch is not None:  # Data Docs are not what the catalogue checks: faster
            self.monkeypatch.setattr(
                validate_module,
                "validate_frame",
                functools.partial(_validate_frame, build_docs=False),
            )
        with warehouse.connect(self.settings.warehouse_path) as con:
            report = stage_source(con, self.settings, source, day, run_id, now)
            night.issues = [i for d in report for i in d.issues]
            if validate:
                v = validate_source(con, self.settings, SOURCE, run_id, now)
                night.rows = v.rows
                failed = [o.rule for o in v.outcome.failures("block")]
                night.blocked = gates.suite_blockers(failed, v.quarantine_rate, MAX_QUARANTINE_RATE)
                if not gates.volume_within(v.volume_drop, MAX_VOLUME_DROP):
                    night.blocked.append("volume_stable")
        return night

    def baseline(self, validate: bool = False) -> Night:
        """The first night: the good customers and orders."""
        self.write_customers([])
        self.write_orders([])
        night = self.night(BASE_DAY, validate=validate)
        assert not night.rejected and not night.blocked, night
        return night

    # --- reading back -------------------------------------------------------------------
    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        con = duckdb.connect(str(self.settings.warehouse_path), read_only=True)
        try:
            return con.execute(sql, params or []).df()
        finally:
            con.close()

    def staged(self) -> pd.DataFrame:
        return self.query("SELECT * FROM staging.customers WHERE source_system = ?", [SOURCE])

    def quarantine(self, run_id: str) -> pd.DataFrame:
        return self.query(
            "SELECT source_id, rule FROM quality.quarantine WHERE source_system = ? AND run_id = ?",
            [SOURCE, run_id],
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything an error must leave as it was: warehouse tables and the landing zone."""
        tables: dict[str, Any] = {}
        path = self.settings.warehouse_path
        try:
            if path.is_dir():
                raise IsADirectoryError(path)
            for table in ("staging.customers", "staging.orders", "quality.quarantine"):
                frame = self.query(f"SELECT * FROM {table}")
                tables[table] = sorted(map(repr, frame.astype(str).values.tolist()))
        except duckdb.Error:  # a damaged warehouse must stay byte for byte as it was
            tables = {"file": hashlib.sha256(path.read_bytes()).hexdigest()}
        except IsADirectoryError:
            tables = {"file": "directory"}
        landing = sorted(
            str(p.relative_to(self.settings.landing_dir))
            for p in self.settings.landing_dir.rglob("*")
            if p.is_file()  # an empty folder left behind holds no data
        )
        return {"tables": tables, "landing": landing}


# ---- expectations ---------------------------------------------------------------------------
FIX_HINT = re.compile(
    r"\b(check|set|declare|fix|export|use|remove|add|run|rename|replace|correct|restore|"
    r"quote|give|retry|try|wait|make|deliver|delete|grant|escape|save|stop|split|move|must|"
    r"allowed|did you mean|known|the form is|retrain|should|placeholders are)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Raises:
    """A clear error: of `error` type, its message holding every string of `names` (any
    case): the source or file, the row/column/setting, and a hint of what to do."""

    error: type | tuple[type, ...]
    names: tuple[str, ...]
    # what must be as it was after the error: "all" (warehouse and landing zone), "warehouse"
    # (an extraction may have landed: it is staged by the next run), "staged" (staging ran:
    # every landed record is staged once, nothing else changed)
    keeps: str = "all"


@dataclass(frozen=True)
class Quarantined:
    """Exactly the rows `ids` are quarantined, each with a rule matching `rule` (regex)."""

    rule: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Held:
    """Rows `ids` are held back: quarantined with a rule matching `rule`, or the source's
    suite blocks with a rule matching it (nothing published)."""

    rule: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Blocked:
    """The night is stopped before publishing by a blocking rule matching `rule` (regex)."""

    rule: str


@dataclass(frozen=True)
class Accepted:
    """Row `row_id` is staged, not quarantined, and its staged `column` equals `value`."""

    row_id: str
    column: str
    value: Any


@dataclass(frozen=True)
class OrderFlagged:
    """Exactly the order rows `ids` carry a mapping error on `field`, and a mapping issue
    names the field and its source column."""

    field: str
    ids: tuple[str, ...]


@dataclass(frozen=True)
class OrderAccepted:
    """Order `order_id` is staged without mapping errors and its `column` equals `value`."""

    order_id: str
    column: str
    value: Any


Expect = Raises | Quarantined | Held | Blocked | Accepted | OrderFlagged | OrderAccepted


@dataclass(frozen=True)
class Case:
    """One hostile input and the answer custpipe must give."""

    id: str
    kind: str
    build: Callable[[Bench], Any]  # writes the input; may return a callable run instead
    expect: Expect | tuple[Expect, ...]
    ids: tuple[str, ...] | None = None  # raw record ids of the input (default: good rows)
    secrets: tuple[str, ...] = ()  # values that must not appear in any error message
    validated_baseline: bool = False
    check: Callable[[Bench, Night | None], None] | None = None  # a further assertion
    services: str | None = None  # "postgres" / "mariadb": skips when the server is absent

    def __str__(self) -> str:
        return self.id


def run_case(case: Case, root: Path, monkeypatch) -> None:
    """Run one case end to end and assert its answer and conservation."""
    bench = Bench(root, monkeypatch)
    bench.baseline(validate=case.validated_baseline)
    expects = case.expect if isinstance(case.expect, tuple) else (case.expect,)
    error: BaseException | None = None
    night: Night | None = None
    action = case.build(bench)  # writes the input (and may damage the warehouse)
    before = bench.snapshot()
    try:
        night = action() if callable(action) else bench.night()
    except Exception as exc:  # the answer is checked below, whatever it is
        error = exc
    raises = [e for e in expects if isinstance(e, Raises)]
    if raises:
        _check_error(case, raises[0], error)
        after = bench.snapshot()
        if raises[0].keeps == "all":
            assert after == before, f"{case.id}: the error left the warehouse or landing changed"
        elif raises[0].keeps == "warehouse":
            assert after["tables"] == before["tables"], f"{case.id}: the warehouse changed"
        else:
            landing = {
                d: max(bench.settings.landing_dir.glob(f"*/{SOURCE}/*/{d}"))
                for d in ("customers", "orders")
            }
            conservation(case, bench, Night("none", landing=landing), quarantine=False)
    else:
        if error is not None:
            raise AssertionError(
                f"{case.id}: expected an answer, got {type(error).__name__}: {error}"
            ) from error
        assert night is not None
        for e in expects:
            _check_answer(case, bench, night, e)
        conservation(case, bench, night)
    if case.check is not None:
        case.check(bench, night)


def _check_error(case: Case, expect: Raises, error: BaseException | None) -> None:
    assert error is not None, f"{case.id}: no error raised"
    text = str(error)
    assert isinstance(error, expect.error), (
        f"{case.id}: expected {expect.error}, got {type(error).__module__}."
        f"{type(error).__name__}: {text}"
    )
    assert _raised_by_custpipe(error), (
        f"{case.id}: a bare {type(error).__name__} from a library instead of a clear error: {text}"
    )
    missing = [n for n in expect.names if n.lower() not in text.lower()]
    assert not missing, f"{case.id}: the message does not name {missing}: {text}"
    assert FIX_HINT.search(text), f"{case.id}: the message says nothing to do: {text}"
    leaked = [s for s in case.secrets if s in text]
    assert not leaked, f"{case.id}: the message leaks {leaked}"


def _raised_by_custpipe(error: BaseException) -> bool:
    """True when custpipe's own code raised the error (not a library deep below it)."""
    tb = error.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    package = str(Path(warehouse.__file__).parent)
    return last is not None and last.startswith(package) and "site-packages" not in last


def _quarantined(bench: Bench, night: Night) -> pd.DataFrame:
    return bench.quarantine(night.run_id)


def _check_answer(case: Case, bench: Bench, night: Night, e: Expect) -> None:
    q = _quarantined(bench, night)
    if isinstance(e, Quarantined):
        assert not night.rejected, f"{case.id}: the extraction was rejected {night.rejected}"
        hit = q[q["rule"].str.contains(e.rule, regex=True)]
        assert set(hit["source_id"]) == set(e.ids), (
            f"{case.id}: rule /{e.rule}/ held {sorted(set(hit['source_id']))}, want {e.ids} "
            f"(rules: {sorted(set(q['rule']))}, issues: {[str(i) for i in night.issues]})"
        )
        assert set(q["source_id"]) == set(e.ids), (
            f"{case.id}: other rows quarantined too: {sorted(set(q['source_id']) - set(e.ids))}"
        )
    elif isinstance(e, Held):
        rules = night.rejected + night.blocked
        blocked = [r for r in rules if re.search(e.rule, r)]
        hit = q[q["rule"].str.contains(e.rule, regex=True)]
        assert blocked or set(hit["source_id"]) >= set(e.ids), (
            f"{case.id}: rows {e.ids} not held back by /{e.rule}/ (blocked {rules}, "
            f"quarantined {sorted(set(zip(q['source_id'], q['rule'], strict=True)))})"
        )
    elif isinstance(e, Blocked):
        rules = night.rejected + night.blocked
        assert any(re.search(e.rule, r) for r in rules), (
            f"{case.id}: not blocked by /{e.rule}/ (blocked by {rules})"
        )
    elif isinstance(e, Accepted):
        staged = bench.staged()
        row = staged[staged["source_id"] == e.row_id]
        assert len(row) == 1, f"{case.id}: {e.row_id} staged {len(row)} times"
        assert e.row_id not in set(q["source_id"]), (
            f"{case.id}: {e.row_id} quarantined: {sorted(q[q['source_id'] == e.row_id]['rule'])}"
        )
        assert not night.blocked and not night.rejected, f"{case.id}: blocked {night.blocked}"
        got = row.iloc[0][e.column]
        got = None if got is None or (not isinstance(got, str) and pd.isna(got)) else got
        if isinstance(got, pd.Timestamp):
            got = got.isoformat(sep=" ")
        if hasattr(got, "item"):
            got = got.item()
        assert got == e.value, f"{case.id}: {e.column} of {e.row_id} is {got!r}, want {e.value!r}"
    elif isinstance(e, OrderFlagged):
        orders = bench.query(
            "SELECT source_id, mapping_errors FROM staging.orders WHERE source_system = ?",
            [SOURCE],
        )
        flagged = orders[orders["mapping_errors"].fillna("").str.contains(e.field, regex=False)]
        assert set(flagged["source_id"]) == set(e.ids), (
            f"{case.id}: orders flagged on {e.field}: {sorted(flagged['source_id'])}, want "
            f"{e.ids} (issues: {[str(i) for i in night.issues]})"
        )
        assert any(i.field == e.field for i in night.issues), (
            f"{case.id}: no mapping issue for {e.field}: {[str(i) for i in night.issues]}"
        )
    elif isinstance(e, OrderAccepted):
        orders = bench.query(
            "SELECT * FROM staging.orders WHERE source_system = ? AND source_id = ?",
            [SOURCE, e.order_id],
        )
        assert len(orders) == 1, f"{case.id}: order {e.order_id} staged {len(orders)} times"
        row = orders.iloc[0]
        assert row["mapping_errors"] is None or pd.isna(row["mapping_errors"]), (
            f"{case.id}: order {e.order_id} flagged {row['mapping_errors']}"
        )
        assert row[e.column] == e.value, f"{case.id}: {e.column} is {row[e.column]!r}"


def conservation(case: Case, bench: Bench, night: Night, quarantine: bool = True) -> None:
    """Every raw record id of the input ends exactly once in accepted staging or quarantine
    (as many times as the input holds it), and the input's rows all reached the landing."""
    if night.rejected:  # a rejected extraction is never staged: the warehouse keeps the old
        landed = read_landing_table(night.landing["customers"]).to_pandas()
        assert len(landed) == len(case.ids or GOOD_IDS)
        return
    landed = read_landing_table(night.landing["customers"]).to_pandas()
    ident = bench.source["customers"]["id"]
    landed_ids = Counter(
        None if v is None or not str(v).strip() else str(v).strip() for v in landed[ident]
    )
    declared = Counter(case.ids if case.ids is not None else GOOD_IDS)
    assert landed_ids == declared, (
        f"{case.id}: the landing holds {sorted(landed_ids.items(), key=str)}, the input "
        f"{sorted(declared.items(), key=str)}"
    )
    staged = Counter(None if v is None else v for v in bench.staged()["source_id"])
    assert staged == landed_ids, f"{case.id}: staged {staged} != landed {landed_ids}"
    if quarantine:
        q = bench.quarantine(night.run_id)
        assert set(q["source_id"]) <= set(staged), f"{case.id}: quarantine of unstaged ids"
    orders_in = read_landing_table(night.landing["orders"]).to_pandas()
    orders_ids = Counter(
        bench.query("SELECT source_id FROM staging.orders WHERE source_system = ?", [SOURCE])[
            "source_id"
        ]
    )
    assert orders_ids == Counter(orders_in[bench.source["orders"]["id"]].str.strip()), case.id

"""Typed models of the pipeline configuration: sources, mapping rules, thresholds.

A deployment is a folder holding `pipeline.yaml` and one `sources/<name>.yaml` per source
system. Everything is validated when loaded; an error names the file and the key.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from custpipe import catalogue
from custpipe.matching.settings import MatchSettings

# the canonical fields a mapping file may map, declared in custpipe/catalogue.py
CUSTOMER_FIELDS: tuple[str, ...] = catalogue.canonical_fields("customers")
ORDER_FIELDS: tuple[str, ...] = catalogue.canonical_fields("orders")
ORDER_LINE_FIELDS: tuple[str, ...] = catalogue.canonical_fields("order_lines")
TRANSFORMS = ("strip_leading_zeros", "digits_only", "upper", "lower", "infer_party_type")


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid."""


def check_timezone(value: str) -> str:
    """`value` if it names an IANA time zone (e.g. 'Asia/Shanghai'), else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"timezone {value!r} is not an IANA time zone name (such as 'UTC', "
            "'Europe/Berlin' or 'Asia/Shanghai')"
        ) from exc
    return value


def daily_cron_time(cron: str) -> tuple[int, int]:
    """(hour, minute) of a daily cron such as '0 2 * * *', else ValueError.

    The nightly schedule runs once per business date, so only a daily cron is meaningful:
    minute and hour as numbers, the other three fields '*'.
    """
    fields = str(cron).split()
    if len(fields) == 5 and fields[2:] == ["*", "*", "*"]:
        minute, hour = fields[0], fields[1]
        if minute.isdigit() and hour.isdigit() and int(minute) < 60 and int(hour) < 24:
            return int(hour), int(minute)
    raise ValueError(
        f"{cron!r} is not a daily cron: use 'MINUTE HOUR * * *' with a minute 0-59 and an "
        "hour 0-23, such as '0 2 * * *' (the nightly run, once per business date)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberFormat(_Strict):
    """How a source writes numbers: the decimal mark and the (optional) thousands separator.

    Parsing is strict: under the default (decimal '.', group ',') '1,234.5' is 1234.5 and
    '12,50' is not a number (reported, never guessed as 1250 or 12.5).
    """

    decimal: Literal[".", ","] = "."
    group: Literal[",", ".", " ", "'", ""] = ","

    @model_validator(mode="after")
    def _distinct(self) -> NumberFormat:
        if self.decimal == self.group:
            raise ValueError(
                f"number_format: decimal and group separator are both {self.decimal!r}; "
                "give them different characters (group may be '' for none)"
            )
        return self


class FieldRule(_Strict):
    """How one canonical field is computed from a source row."""

    column: str | None = None
    concat: list[str] | None = None
    expr: str | None = None  # a SQL expression over the source columns (DuckDB dialect)
    const: Any = None
    sep: str = " "
    split: str | None = None  # split the input on this separator ...
    part: int = 0  # ... and keep this part (0 = first, -1 = last)
    crosswalk: dict[str, Any] | None = None
    date_format: str | None = None
    number_format: NumberFormat | None = None  # numeric fields: overrides the dataset's
    transform: Literal[TRANSFORMS] | None = None  # type: ignore[valid-type]
    default: Any = None

    @model_validator(mode="after")
    def _one_input(self) -> FieldRule:
        inputs = ("column", "concat", "expr", "const")
        given = [k for k in inputs if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'column', 'concat', 'expr' or 'const'")
        if self.split == "":
            raise ValueError("'split' needs a non-empty separator")
        if self.expr is not None:
            from custpipe.mapping.sql_expr import check_expression

            check_expression(self.expr)  # exactly one expression: no smuggled statements
        return self

    def source_columns(self) -> list[str]:
        """Source columns this rule reads."""
        if self.column is not None:
            return [self.column]
        return list(self.concat or [])


DEFAULT_FULL_EVERY_DAYS = 7  # an incremental reader's periodic full extraction: weekly


class ReaderConfig(_Strict):
    """Where a dataset's rows come from."""

    kind: Literal["sql", "csv", "jsonl", "parquet", "xlsx"]
    table: str | None = None
    query: str | None = None
    path: str | None = None
    encoding: str | None = None  # None: UTF-8 (with or without BOM), else detected with a warning
    delimiter: str = ","
    quotechar: str = '"'
    sheet: str | None = None  # xlsx: the worksheet (default: the first)
    watermark: str | None = None  # sql: extract only rows at or above the last maximum
    # sql with a watermark: a full extraction when the last full one is this many business
    # days old or more — it catches rows deleted at the source, which an incremental read
    # never sees (staging retires them); null: only on --full-refresh
    full_every_days: int | None = Field(default=DEFAULT_FULL_EVERY_DAYS, ge=1)
    chunk_size: int = Field(default=100_000, gt=0)
    # csv: remove the spaces around each header name ('id, given_name' -> 'given_name'), so
    # the mapping names columns plainly; values keep theirs (standardisation cleans text).
    # Default: true, except for a mapping that names a column with spaces around it (written
    # for the header as the file spells it; see DatasetConfig._header_as_mapped).
    strip_header: bool = True

    @model_validator(mode="after")
    def _location(self) -> ReaderConfig:
        if self.kind == "sql" and not (self.table or self.query):
            raise ValueError("a 'sql' reader needs 'table' or 'query'")
        if self.kind == "sql" and self.table and self.query:
            raise ValueError("give 'table' or 'query', not both")
        if self.kind != "sql" and not self.path:
            raise ValueError(f"a '{self.kind}' reader needs 'path'")
        if self.watermark and self.kind != "sql":
            raise ValueError("'watermark' (incremental extraction) is for 'sql' readers")
        if self.full_every_days != DEFAULT_FULL_EVERY_DAYS and not self.watermark:
            raise ValueError(
                "'full_every_days' (the periodic full extraction) is for incremental readers: "
                "set a 'watermark', or remove it (without one every extraction is full)"
            )
        if len(self.quotechar) != 1 or len(self.delimiter) != 1:
            raise ValueError("'delimiter' and 'quotechar' must be one character each")
        if not self.strip_header and self.kind != "csv":  # (true: a dumped config's default)
            raise ValueError(
                "'strip_header' is for 'csv' readers (an xlsx header is always stripped; SQL, "
                "JSON Lines and Parquet names are taken as they are): remove it"
            )
        if self.path:
            _check_placeholders(self.path, "path", PATH_PLACEHOLDERS)
        if self.query:
            _check_query(self.query)
        return self


PATH_PLACEHOLDERS = ("data", "sources", "config", "yyyymmdd", "date")
URL_PLACEHOLDERS = ("data", "sources", "config")


def _check_placeholders(template: str, setting: str, known: tuple[str, ...]) -> None:
    """Unknown `{placeholder}`s (or unbalanced braces) in a path or URL fail when loaded."""
    import string

    from custpipe.secrets import mask_url

    names = ", ".join("{" + k + "}" for k in known)
    shown = mask_url(template) if setting == "url" else template  # never a URL's password
    try:
        used = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(
            f"'{setting}' {shown!r}: {exc}; the placeholders are {names} "
            "(write {{ and }} for a literal brace)"
        ) from None
    unknown = [f for f in used if f.split(".")[0].split("[")[0] not in known]
    if unknown:
        raise ValueError(
            f"'{setting}' {shown!r} has an unknown placeholder {{{unknown[0]}}}; "
            f"the placeholders are {names}"
        )


def _check_query(query: str) -> None:
    """A reader `query` must be exactly one SELECT (checked again in the URL's dialect)."""
    from custpipe.sources.sql_guard import NotOneSelect, Unparseable, check_select

    try:
        check_select(query)
    except Unparseable:
        pass  # perhaps dialect syntax: checked in the source's dialect before it runs
    except NotOneSelect as exc:
        raise ValueError(
            f"'query' must be exactly one SELECT (no second statement, no DML, COPY or "
            f"SELECT INTO, no FOR UPDATE): {exc}. Use a SELECT (or a view in the source "
            "database and 'table')."
        ) from None


class DatasetConfig(_Strict):
    """One dataset of a source (customers or orders): reader plus field map."""

    reader: ReaderConfig
    id: str
    fields: dict[str, FieldRule]
    required: list[str] = []  # canonical fields every row must have (else quarantined)
    on_unmapped_code: Literal["quarantine", "fail"] = "quarantine"  # lenient or strict
    number_format: NumberFormat = NumberFormat()  # amounts and quantities (per field: override)

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({"column": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @model_validator(mode="before")
    @classmethod
    def _header_as_mapped(cls, data: Any) -> Any:
        """A CSV mapping that names a column with spaces around it (' given_name') was
        written for the header as the file spells it: unless the reader says otherwise, its
        header is kept as it is (strip_header false), so such a deployment reads as before."""
        if not isinstance(data, dict) or not isinstance(data.get("reader"), dict):
            return data
        reader, fields = data["reader"], data.get("fields")
        rules = fields.values() if isinstance(fields, dict) else ()
        if (
            reader.get("kind") == "csv"
            and "strip_header" not in reader
            and _spaced_names(data.get("id"), rules)
        ):
            data = data | {"reader": reader | {"strip_header": False}}
        return data

    @model_validator(mode="after")
    def _required_mapped(self) -> DatasetConfig:
        missing = [f for f in self.required if f not in self.fields]
        if missing:
            hint = ""
            if "name" in missing and {"given_name", "family_name"} & set(self.fields):
                hint = (
                    " ('name' is derived from given_name and family_name here: require those, "
                    "or leave it to the suites' name_required rule, which quarantines a record "
                    "without a name)"
                )
            raise ValueError(f"required field(s) {missing} are not mapped in 'fields'{hint}")
        return self

    @model_validator(mode="after")
    def _names_fit_header(self) -> DatasetConfig:
        if self.reader.kind == "csv" and self.reader.strip_header:
            spaced = _spaced_names(self.id, [r.model_dump() for r in self.fields.values()])
            if spaced:
                plain = ", ".join(repr(c.strip()) for c in spaced)
                raise ValueError(
                    f"the mapping names column(s) {', '.join(map(repr, spaced))} with spaces "
                    "around them, but the reader removes the spaces around the header's names "
                    f"(strip_header: true): write {plain}, or set 'strip_header: false' in the "
                    "reader to read the header as the file spells it"
                )
        return self

    def mentioned_in_expressions(self, columns: list[str]) -> list[str]:
        """The columns among `columns` that some `expr` rule names (quoted or as a word)."""
        exprs = [r.expr for r in self.fields.values() if r.expr]
        return [
            c
            for c in columns
            if any(f'"{c}"' in e or re.search(rf"\b{re.escape(c)}\b", e) for e in exprs)
        ]

    def source_columns(self) -> list[str]:
        """Every source column the dataset's mapping reads, id first, without repeats."""
        cols = [self.id]
        if self.reader.watermark and self.reader.watermark not in cols:
            cols.append(self.reader.watermark)
        for rule in self.fields.values():
            cols.extend(c for c in rule.source_columns() if c not in cols)
        return cols


def _spaced_names(id_column: Any, rules: Any) -> list[str]:
    """Source column names with spaces around them that a dataset mapping reads: its `id`,
    and per field rule (a column name, or a rule as a dict) its `column`, `concat` and the
    double-quoted names in its `expr`."""
    names: list[Any] = [id_column]
    for rule in rules:
        if isinstance(rule, str):
            names.append(rule)
        elif isinstance(rule, dict):
            names.append(rule.get("column"))
            if isinstance(rule.get("concat"), list):
                names.extend(rule["concat"])
            if isinstance(rule.get("expr"), str):
                names.extend(re.findall(r'"([^"]*)"', rule["expr"]))
    return sorted({n for n in names if isinstance(n, str) and n != n.strip()})


class ConnectionConfig(_Strict):
    """A SQLAlchemy URL: from the environment variable `url_env` if set, else `url`."""

    url_env: str | None = None
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: str | None) -> str | None:
        if url:
            from custpipe.sources.sql_guard import check_url

            _check_placeholders(url, "url", URL_PLACEHOLDERS)
            try:
                check_url(url)
            except ValueError as exc:
                raise ValueError(f"'url' {exc}") from None
        return url


class SourceConfig(_Strict):
    """A source system: its connection, customers and (optionally) orders and order lines."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    trust: int = Field(default=100, ge=0, description="lower is more trusted in survivorship")
    # IANA zone of the source's naive timestamps (None: the pipeline's `timezone`)
    timezone: str | None = None
    connection: ConnectionConfig | None = None
    customers: DatasetConfig
    orders: DatasetConfig | None = None
    order_lines: DatasetConfig | None = None  # line items of the orders, where a source has them
    # when this source's new data fails (extract, schema, mapping): 'hold' it back and let the
    # night go on with its last good staged state, or 'block' the night (custpipe.holding)
    on_failure: Literal["hold", "block"] = Field(
        default="hold",
        description="hold: a failure of this source's new data holds it back (the night uses "
        "its last good staged state and publishes for the others, loudly); block: the night "
        "stops before consolidation",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _fields_known(self) -> SourceConfig:
        for dataset, allowed in (
            ("customers", CUSTOMER_FIELDS),
            ("orders", ORDER_FIELDS),
            ("order_lines", ORDER_LINE_FIELDS),
        ):
            ds = getattr(self, dataset)
            if ds is None:
                continue
            unknown = sorted(set(ds.fields) - set(allowed))
            if unknown:
                raise ValueError(
                    f"{dataset}.fields: unknown canonical field(s) {unknown}; "
                    f"known fields are {list(allowed)}"
                )
            if ds.reader.kind == "sql" and self.connection is None:
                raise ValueError(f"{dataset}: a 'sql' reader needs the source's 'connection'")
        if self.orders is not None:
            missing = sorted({"order_number", "customer_ref"} - set(self.orders.fields))
            if missing:
                raise ValueError(f"orders.fields: required field(s) {missing} are not mapped")
        if self.order_lines is not None:
            missing = sorted({"order_number", "line_amount"} - set(self.order_lines.fields))
            if missing:
                raise ValueError(f"order_lines.fields: required field(s) {missing} are not mapped")
            if self.orders is None:
                raise ValueError("order_lines: the source has no 'orders' the lines belong to")
        if not {"name", "given_name", "family_name"} & set(self.customers.fields):
            raise ValueError(
                "customers.fields: no name is mapped: map 'name' (a company's or a person's "
                "full name), or for persons 'given_name' and/or 'family_name' (the name is "
                "then 'given family')"
            )
        return self

    def datasets(self) -> dict[str, DatasetConfig]:
        """The configured datasets by name."""
        out = {"customers": self.customers}
        if self.orders is not None:
            out["orders"] = self.orders
        if self.order_lines is not None:
            out["order_lines"] = self.order_lines
        return out


# The default of reconcile.system_of_record and publish.erp_source: this source if it is
# configured, else none (PipelineConfig._references).
DEFAULT_ERP = "erp"


class ReconcileConfig(_Strict):
    """Order reconciliation settings."""

    # the source whose orders the others are compared with; None (null): orders are not
    # compared across systems, only each system's own findings are reported
    system_of_record: str | None = DEFAULT_ERP
    amount_tolerance: float = Field(default=0.01, ge=0)
    # orders whose numbers differ pair up on (golden customer, amount, date within N days)
    date_window_days: int = Field(default=3, ge=0)
    # the "no_discrepancies" check warns when findings exceed this share of the orders
    discrepancy_warn_rate: float = Field(default=0.05, ge=0, le=1)


class PublishConfig(_Strict):
    """Where the reconciled customer table is published."""

    connection: ConnectionConfig
    table: str = "ZCUST_INBOUND"
    # the source whose (active) record ids are the golden customers' ERP customer numbers;
    # None (null): the golden customers carry no ERP customer number
    erp_source: str | None = DEFAULT_ERP
    # refuse a publish that would retire more than this share of the active rows (override
    # for one run with the publish asset's `allow_mass_retire` config)
    max_retire_share: float = Field(default=0.05, ge=0, le=1)


class QualityConfig(_Strict):
    """Validation thresholds."""

    results_limit: int = Field(default=30, gt=0)
    include_values_in_docs: bool = False
    # a source whose staged rows drop by more than this share since its last validation is
    # blocked (an empty or truncated export must not retire customers downstream)
    max_volume_drop: float = Field(default=0.2, ge=0, le=1)
    # the "rows_quarantined" check warns above this share of a source's rows ...
    quarantine_warn_rate: float = Field(default=0.05, ge=0, le=1)
    # ... and above this share the source is blocked: so many bad rows is a systemic problem
    max_quarantine_rate: float = Field(default=0.2, ge=0, le=1)
    # the "mapping_issues" check (staging) warns when the rows flagged while mapping exceed
    # this share of the rows mapped tonight
    mapping_issue_warn_rate: float = Field(default=0.05, ge=0, le=1)
    # the "review_queue_growth" check warns when the steward review queue holds more than
    # this many times the pairs of the last run (an empty queue counts as one pair)
    review_growth_factor: float = Field(default=2.0, ge=1)


class RetentionConfig(_Strict):
    """Days the nightly run keeps each kind of data; null or 0 keeps it forever."""

    publish_files: int | None = Field(default=90, ge=0)  # data/publish/<run>/ (customer values)
    quarantine: int | None = Field(default=365, ge=0)  # quality.quarantine (record ids, rules)
    scorecard: int | None = Field(default=730, ge=0)  # quality.scorecard (counts only)
    golden_id_history: int | None = Field(default=730, ge=0)  # mdm.golden_id_history (ids)
    # landing folders (raw extracts, customer values); those staging still needs are kept
    landing: int | None = Field(default=90, ge=0)


class IncrementalConfig(_Strict):
    """Incremental nights: the stages after extraction work on what changed since the last
    run; a periodic full recompute compares itself with the incremental state."""

    enabled: bool = True  # false: every night recomputes every stage in full
    # a full recompute of every stage (compared with the incremental state) when the last
    # one is this many days old; null: only on `custpipe run --full-refresh`
    full_every_days: int | None = Field(default=7, ge=1)


class MatchingConfig(MatchSettings):
    """The probabilistic match model, its shape (blocking rules, comparisons, training rules,
    exclusions; see custpipe.matching.settings) and its thresholds (match probabilities)."""

    model: str = "{config}/match_model.json"  # trained by `custpipe train-model`
    auto_merge: float = Field(default=0.99, gt=0, le=1)  # at or above: linked
    review: float = Field(default=0.80, gt=0, le=1)  # between review and auto_merge: review

    @model_validator(mode="after")
    def _order(self) -> MatchingConfig:
        if self.review > self.auto_merge:
            raise ValueError(
                f"review ({self.review}) must not exceed auto_merge ({self.auto_merge})"
            )
        return self


class SurvivorshipConfig(_Strict):
    """Survivorship rules (see custpipe.matching.survivorship): a default order, and per
    golden attribute an order of its own. Rules: valid, trust, recent, complete, frequent."""

    default: list[str] = ["valid", "trust"]
    attributes: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _known(self) -> SurvivorshipConfig:
        self.build()  # raises ValueError naming the unknown attribute or rule
        return self

    def build(self):
        """The matching layer's Survivorship object."""
        from custpipe.matching.survivorship import Survivorship

        return Survivorship(tuple(self.default), {a: tuple(r) for a, r in self.attributes.items()})


class SparkConfig(_Strict):
    """Where `engine: spark` runs its work: the Spark master (the environment's
    CUSTPIPE_SPARK_MASTER wins, so a deployment points at its cluster without editing this
    file), extra Spark settings (spark.* keys, e.g. spark.driver.memory), and how the work
    is launched: in the run's own Spark session, or as spark-submit jobs through Dagster
    Pipes (custpipe.spark.runners)."""

    master: str = "local[2]"
    conf: dict[str, str] = {}
    launch: Literal["session", "submit"] = "session"
    # where the warehouse and Spark exchange tables as Parquet (custpipe.spark.exchange): a
    # folder this process, the driver and the executors all reach ({data} and the other
    # placeholders expand)
    tables: str = "{data}/spark/tables"
    # GX validates a frame of at least this many rows on Spark (launch: session); None (the
    # default): every frame on pandas. Measured on local[2]: 50,000 staged ERP rows took
    # 68.5 s on Spark against 7.1 s on pandas (GX runs each rule's metrics as separate Spark
    # jobs), so it pays only with many executors
    validate_min_rows: int | None = Field(default=None, ge=0)

    @field_validator("conf")
    @classmethod
    def _spark_keys(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = [k for k in value if not k.startswith("spark.")]
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)}: not Spark settings (every key of spark.conf starts "
                "with 'spark.', e.g. spark.driver.memory)"
            )
        return value


class AlertsConfig(_Strict):
    """Where the alert of a blocked or failed night goes, besides <data>/alerts/alerts.jsonl."""

    # the Dagster UI the alert links to (<dagster_url>/runs/<run_id>); the environment
    # variable CUSTPIPE_DAGSTER_URL overrides it
    dagster_url: str = "http://127.0.0.1:3000"
    # the environment variable holding the webhook URL (a JSON POST of each alert); unset or
    # empty: no webhook. The URL often holds a token, so it is never written in this file.
    webhook_url_env: str = "CUSTPIPE_ALERT_WEBHOOK"
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=120)

    @field_validator("dagster_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/@]+(/[^\s@]*)?", value):
            raise ValueError(
                f"{value!r} is not the URL of the Dagster UI: write it as http://host:port "
                "(no user or password)"
            )
        return value.rstrip("/")


class PipelineConfig(_Strict):
    """The whole deployment."""

    timezone: str = "UTC"
    schedule_cron: str = "0 2 * * *"
    # the first business date of the nightly job's partitions: the go-live night of the
    # deployment (earlier dates show as missing partitions in the Dagster UI)
    partitions_start: str = "2026-01-01"
    # who answers for the assets, shown in the Dagster catalogue: e-mail addresses or team
    # names written `team:<name>`
    owners: list[str] = ["team:customer-data"]
    sources: dict[str, SourceConfig]
    # where staging maps rows and pairs are scored: duckdb (one machine) or spark (the
    # executors and Splink's Spark backend, see custpipe.spark); both give the same tables
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkConfig = SparkConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    publish: PublishConfig
    quality: QualityConfig = QualityConfig()
    retention: RetentionConfig = RetentionConfig()
    matching: MatchingConfig = MatchingConfig()
    survivorship: SurvivorshipConfig = SurvivorshipConfig()
    incremental: IncrementalConfig = IncrementalConfig()
    alerts: AlertsConfig = AlertsConfig()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("schedule_cron")
    @classmethod
    def _daily_cron(cls, value: str) -> str:
        daily_cron_time(value)
        return value

    @field_validator("partitions_start")
    @classmethod
    def _start_date(cls, value: str) -> str:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(f"{value!r} is not a date: write it as YYYY-MM-DD (e.g. 2026-01-01)")
        try:
            date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date ({exc})") from None
        return value

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: list[str]) -> list[str]:
        for owner in value:
            team = owner.startswith("team:") and re.fullmatch(r"team:[\w.-]+", owner)
            if not team and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", owner):
                raise ValueError(
                    f"{owner!r} is not an owner: write an e-mail address "
                    "(someone@example.com) or a team as team:<name> (team:customer-data)"
                )
        return value

    def mapped_customer_fields(self) -> set[str]:
        """The canonical customer fields some configured source maps."""
        return {f for s in self.sources.values() for f in s.customers.fields}

    def match_settings(self) -> MatchSettings:
        """The matching settings less the comparisons of columns no source maps: what
        `train-model` trains and what the nightly run checks the model file against."""
        return MatchSettings(
            **{k: getattr(self.matching, k) for k in MatchSettings.model_fields}
        ).mapped(self.mapped_customer_fields())

    @property
    def schedule_time(self) -> tuple[int, int]:
        """(hour, minute) of the nightly schedule, in the pipeline's `timezone`."""
        return daily_cron_time(self.schedule_cron)

    @model_validator(mode="before")
    @classmethod
    def _default_references(cls, data: Any) -> Any:
        """reconcile.system_of_record and publish.erp_source left out mean the source 'erp'
        where one is configured, else none (a deployment without an ERP or without orders)."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), dict):
            return data
        if DEFAULT_ERP in data["sources"]:
            return data
        data = dict(data)
        for section, key in (("reconcile", "system_of_record"), ("publish", "erp_source")):
            part = data.get(section, {})
            if isinstance(part, dict) and key not in part:
                data[section] = part | {key: None}
            elif isinstance(part, BaseModel) and key not in part.model_fields_set:
                data[section] = part.model_copy(update={key: None})
        return data

    @model_validator(mode="after")
    def _references(self) -> PipelineConfig:
        if not self.sources:
            raise ValueError("no sources configured")
        for name, source in list(self.sources.items()):
            if source.timezone is None:  # naive stamps of this source are in the pipeline's zone
                self.sources[name] = source.model_copy(update={"timezone": self.timezone})
        refs = {
            "reconcile.system_of_record": self.reconcile.system_of_record,
            "publish.erp_source": self.publish.erp_source,
        }
        for key, ref in refs.items():
            if ref is not None and ref not in self.sources:
                raise ValueError(
                    f"{key}: '{ref}' is not a configured source ({sorted(self.sources)}); "
                    "name one of them, or write null for none"
                )
        return self


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _explain(path: Path, exc: ValidationError) -> ConfigError:
    lines = [f"{path}: invalid configuration"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        lines.append(f"  - {key}: {msg}")
    return ConfigError("\n".join(lines))


def load_source(path: Path) -> SourceConfig:
    """Load and validate one `sources/<name>.yaml` file."""
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    try:
        source = SourceConfig.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, exc) from None  # pydantic's text shows input values (URLs)
    if source.name != path.stem:
        raise ConfigError(f"{path}: name '{source.name}' must match the file name '{path.stem}'")
    return source


def load_config(config_dir: Path) -> PipelineConfig:
    """Load `pipeline.yaml` and every `sources/*.yaml` from a deployment folder."""
    config_dir = Path(config_dir)
    pipeline_file = config_dir / "pipeline.yaml"
    data = _read_yaml(pipeline_file)
    source_files = sorted((config_dir / "sources").glob("*.yaml"))
    if not source_files:
        raise ConfigError(f"{config_dir / 'sources'}: no source files (*.yaml) found")
    data["sources"] = {f.stem: load_source(f) for f in source_files}
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise _explain(pipeline_file, exc) from None  # (no password through the chain)


def run_config_copy(config_dir: Path, data_dir: Path, run_id: str) -> Path:
    """The configuration folder of run `run_id`: a copy of `config_dir` made when a step of
    the run first asks (after the original is validated), read by every later step.

    A multiprocess run loads the configuration once per step process; someone editing
    `config/` during the night would otherwise give the run's steps different settings.
    The copy lives in `<data>/runs/<run_id>/config` and is also the record of what the run
    used.
    """
    import os
    import shutil

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", run_id):
        raise ValueError(f"run id {run_id!r}: letters, digits, '_', '.', '-' only")
    target = Path(data_dir) / "runs" / run_id / "config"
    if target.is_dir():
        return target
    load_config(config_dir)  # errors name the files the user edits, not the copy
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".config-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(config_dir, staging)
    try:
        os.rename(staging, target)  # atomic; another step of the run may have been first
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return target

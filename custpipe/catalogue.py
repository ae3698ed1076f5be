"""The table catalogue: every warehouse table and the published ERP table, declared once.

Each canonical field is declared once in :data:`FIELDS`, with what the other layers need to
know about it (its dataset, type, whether it is a golden attribute with a validity flag, its
place and length in the published table). The warehouse DDL, the staged column lists, the
golden attributes, the published shape, the README's contract table and the test helpers are
all derived from here (the idea of PUDL's `metadata/resources`, kept small).

Every function takes the catalogue as a parameter (default :data:`CATALOGUE`), so a test can
derive everything from a catalogue with one field more.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Literal

Dataset = Literal["customers", "orders", "order_lines"]
DATASETS: tuple[Dataset, ...] = ("customers", "orders", "order_lines")


@dataclass(frozen=True)
class Column:
    """One column of a table: a DuckDB type (or, in the published table, a portable one)."""

    name: str
    type: str
    nullable: bool = True
    description: str = ""
    length: int | None = None  # the most characters of a published text column
    added_later: bool = False  # published table: custpipe adds it to an existing ERP table


@dataclass(frozen=True)
class Table:
    """One table: its columns in order, its keys and what one row means."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    description: str  # one row per ...
    primary_key: tuple[str, ...] = ()
    contract: bool = False  # other tools read it: its names and key columns are public
    key_columns: tuple[str, ...] = ()  # the contract's key columns (may use `left_*`)

    @property
    def qualified_name(self) -> str:
        """`schema.name`."""
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names in order."""
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class Published:
    """Where a golden column stands in the ERP table and how many characters it holds.

    The position is part of the published contract: row hashes join the values in this order.
    """

    position: int
    length: int
    coded: bool = False  # a code of a closed set (an in-set rule holds it), not free text
    staged_as: str | None = None  # a column that is no field: the staged column it publishes
    added_later: bool = False  # the publish adds it to an existing ERP table that lacks it


@dataclass(frozen=True)
class Field:
    """A canonical field of one dataset, as mapped, staged, consolidated and published."""

    name: str
    dataset: Dataset
    description: str
    type: str = "VARCHAR"
    mapped: bool = True  # False: derived by the standardiser, not a field of the mapping files
    validated: bool = False  # staged with a `<name>_valid` flag (survivorship's `valid` rule)
    golden: bool = False  # a golden attribute, chosen by survivorship
    published: Published | None = None  # golden attributes only: its place in the ERP table

    @property
    def validity_flag(self) -> str | None:
        """The name of the staged validity flag, or None."""
        return f"{self.name}_valid" if self.validated else None


#: custpipe.matching.model.MATCH_COLUMNS (a test holds the two equal; not imported: the
#: catalogue imports nothing of custpipe's)
_MATCH_COLUMNS = (
    "party_type", "name_key", "birth_date", "national_id", "tax_id", "email", "phone",
    "street_key", "postal_code", "city_key", "given_name", "family_name", "region", "country",
)  # fmt: skip


def _text(name: str, description: str = "", nullable: bool = True) -> Column:
    return Column(name, "VARCHAR", nullable, description)


FIELDS: tuple[Field, ...] = (
    # customers, in staged column order
    Field("party_type", "customers", "'person' or 'company'", golden=True,
          published=Published(2, 16, coded=True)),
    Field("name", "customers", "full name of the person or company", golden=True,
          published=Published(3, 400)),
    Field("name_key", "customers", "order- and accent-insensitive key of the name (matching)",
          mapped=False, golden=True),
    Field("given_name", "customers", "a person's given name", golden=True),
    Field("family_name", "customers", "a person's family name", golden=True),
    Field("birth_date", "customers", "a person's birth date (a calendar day)", type="TIMESTAMP"),
    Field("national_id", "customers", "a person's national identity number"),
    Field("tax_id", "customers", "VAT or tax number, normalised", validated=True, golden=True,
          published=Published(11, 64)),
    Field("email", "customers", "e-mail address, lower case", validated=True, golden=True,
          published=Published(10, 254)),
    Field("phone", "customers", "phone number in E.164", validated=True, golden=True,
          published=Published(9, 64)),
    Field("street", "customers", "street and house number", golden=True,
          published=Published(4, 400)),
    Field("city", "customers", "city", golden=True, published=Published(5, 200)),
    Field("region", "customers", "region or state", golden=True, published=Published(6, 200)),
    Field("postal_code", "customers", "postal code, normalised per country", validated=True,
          golden=True, published=Published(7, 32)),
    Field("country", "customers", "ISO 3166-1 alpha-2 country code", golden=True,
          published=Published(8, 2, coded=True)),
    Field("segment", "customers", "customer segment (crosswalked)", golden=True,
          published=Published(12, 64, coded=True)),
    Field("segment_raw", "customers", "the source's segment code before the crosswalk",
          mapped=False),
    Field("status", "customers", "the source's status code"),
    Field("is_deleted", "customers", "deleted or blocked in the source", type="BOOLEAN"),
    Field("created_at", "customers", "created in the source (UTC)", type="TIMESTAMP"),
    Field("source_updated_at", "customers", "last changed in the source (UTC)", type="TIMESTAMP"),
    # orders
    Field("order_number", "orders", "the order's number"),
    Field("customer_ref", "orders", "the customer's id in the same source"),
    Field("order_date", "orders", "order date (a calendar day)", type="TIMESTAMP"),
    Field("amount", "orders", "order total", type="DOUBLE"),
    Field("currency", "orders", "ISO 4217 currency code"),
    Field("status", "orders", "the order's status (crosswalked)"),
    # order lines
    Field("order_number", "order_lines", "the number of the order the line belongs to"),
    Field("line_number", "order_lines", "the line's number within its order"),
    Field("product", "order_lines", "product code or name"),
    Field("quantity", "order_lines", "quantity", type="DOUBLE"),
    Field("line_amount", "order_lines", "line total", type="DOUBLE"),
)  # fmt: skip


@dataclass(frozen=True)
class Catalogue:
    """The canonical fields; every table is derived from them (see :func:`tables`)."""

    fields: tuple[Field, ...] = FIELDS

    def with_field(self, new: Field, after: str | None = None) -> Catalogue:
        """This catalogue with `new` added after field `after` of its dataset (default: last)."""
        fields = list(self.fields)
        same = [i for i, f in enumerate(fields) if f.dataset == new.dataset]
        at = same[-1] + 1
        if after is not None:
            named = [i for i in same if fields[i].name == after]
            if not named:
                raise ValueError(f"no {new.dataset} field {after!r} to add {new.name!r} after")
            at = named[0] + 1
        fields.insert(at, new)
        return Catalogue(tuple(fields))


CATALOGUE = Catalogue()

# -- derived lists ------------------------------------------------------------------------


def canonical_fields(dataset: Dataset, catalogue: Catalogue = CATALOGUE) -> tuple[str, ...]:
    """The fields a mapping file of `dataset` may map (config's CUSTOMER_FIELDS etc.)."""
    return tuple(f.name for f in catalogue.fields if f.dataset == dataset and f.mapped)


def _field_columns(dataset: Dataset, catalogue: Catalogue) -> list[Column]:
    columns = []
    for f in catalogue.fields:
        if f.dataset == dataset:
            columns.append(Column(f.name, f.type, description=f.description))
            if f.validity_flag:
                columns.append(Column(f.validity_flag, "BOOLEAN", description=f"{f.name} is valid"))
    return columns


_SOURCE_SYSTEM = _text("source_system", "the source system's name", nullable=False)
_SOURCE_ID = _text("source_id", "the record's id in the source")
_RUN_ID = _text("run_id", "the run that wrote the row")


def _staged_frame_columns(dataset: Dataset, catalogue: Catalogue) -> list[Column]:
    trailer = [
        _text("source_values", "the record's original source values (JSON)"),
        _text("mapping_errors", "mapping rules the record failed, ';'-separated"),
    ]
    if dataset == "customers":
        trailer.append(_text("record_hash", "hash of the canonical values (change detection)"))
    return [_SOURCE_SYSTEM, _SOURCE_ID, *_field_columns(dataset, catalogue), *trailer]


def staged_columns(dataset: Dataset, catalogue: Catalogue = CATALOGUE) -> tuple[str, ...]:
    """The columns staging produces for `dataset` (mapping's STAGED_*_COLUMNS), in order."""
    return tuple(c.name for c in _staged_frame_columns(dataset, catalogue))


def golden_attributes(catalogue: Catalogue = CATALOGUE) -> dict[str, str | None]:
    """Golden attribute -> the validity flag survivorship's `valid` rule reads (or None)."""
    return {
        f.name: f.validity_flag for f in catalogue.fields if f.dataset == "customers" and f.golden
    }


# -- tables ---------------------------------------------------------------------------------

_LOAD_COLUMNS = (
    Column("raw_hash", "BIGINT", description="hash of the raw row (restaging skips unchanged)"),
    Column("business_date", "DATE", description="the business day of the extract"),
    _text("landing_path", "the landing file the row was staged from"),
    _RUN_ID,
    Column("staged_at", "TIMESTAMP", description="when the row was staged (UTC)"),
)
_STAGED_DESCRIPTIONS = {
    "customers": "source record after mapping and standardisation (with `source_values`, the "
    "original values, as JSON)",
    "orders": "source order after mapping",
    "order_lines": "source order line after mapping",
}


def _staging_table(dataset: Dataset, catalogue: Catalogue) -> Table:
    return Table(
        "staging",
        dataset,
        (*_staged_frame_columns(dataset, catalogue), *_LOAD_COLUMNS),
        _STAGED_DESCRIPTIONS[dataset],
        contract=dataset == "customers",
        key_columns=("source_system", "source_id"),
    )


def _golden_table(catalogue: Catalogue) -> Table:
    golden = [f for f in catalogue.fields if f.dataset == "customers" and f.golden]
    return Table(
        "mdm",
        "golden_customers",
        (
            _text("golden_id", "stable id of the real-world customer", nullable=False),
            *(Column(f.name, f.type, description=f.description) for f in golden),
            _text("status", "'active', or 'inactive' when every member is deleted"),
            _text("erp_customer_number", "the ERP's id of an active member"),
            Column("member_count", "BIGINT", description="source records consolidated"),
            _text("sources", "the members' source systems, ','-separated"),
            _text("attribute_sources", "JSON: attribute -> the source record that supplied it"),
            _text("first_seen_run", "the run that first created the golden id"),
            _RUN_ID,
            Column("updated_at", "TIMESTAMP", description="when the row was written (UTC)"),
        ),
        "real-world customer; `attribute_sources` says which source record supplied each attribute",
        primary_key=("golden_id",),
        contract=True,
        key_columns=("golden_id",),
    )


# golden columns that are no canonical field, with their place in the ERP table
_PUBLISHED_GOLDEN_COLUMNS = {
    "erp_customer_number": Published(1, 64, staged_as="source_id"),  # an ERP member's source id
    "status": Published(13, 16, coded=True),
}


def _fixed_tables() -> tuple[Table, ...]:
    """The tables whose columns no canonical field changes."""
    big, ts = "BIGINT", "TIMESTAMP"
    return (
        Table("staging", "landing_log", (
            _text("source_system", nullable=False), _text("dataset", nullable=False),
            _text("landing_path", nullable=False), _text("mode", "full or delta"),
            Column("rows", big), _RUN_ID, Column("staged_at", ts),
            _text("mapping", "fingerprint of the mapping the file was staged with"),
        ), "landing file staged"),
        Table("staging", "mapping_issues", (
            _RUN_ID, _text("source_system"), _text("dataset"), _text("field"),
            _text("source_column"), _text("problem"), Column("rows", big),
            _text("examples", "example codes (never customer values)"), Column("found_at", ts),
        ), "(run, source, field, problem) the mapping found"),
        Table("quality", "validation_runs", (
            _RUN_ID, _text("source_system"), _text("suite"), Column("rows", big),
            Column("quarantined", big), Column("success", "BOOLEAN"), Column("validated_at", ts),
            Column("volume_ok", "BOOLEAN", description="the volume check's own outcome: a "
                   "failed night is no baseline"),
        ), "(run, source) validation"),
        Table("quality", "volume_acceptances", (
            _text("source_system", nullable=False), _text("run_id", nullable=False),
            Column("rows", big), _text("accepted_by", nullable=False),
            _text("reason", nullable=False), Column("accepted_at", ts),
        ), "genuine drop of a source's volume accepted by a person (`custpipe accept-volume`): "
           "the accepted validation becomes the volume check's baseline"),
        Table("quality", "quarantine", (
            _SOURCE_SYSTEM, _SOURCE_ID, _text("rule", nullable=False), _text("severity"),
            _text("description", "what is wrong and how to fix it"),
            _text("run_id", nullable=False), Column("quarantined_at", ts),
        ), "source record held back, with every rule it failed", contract=True,
            key_columns=("source_system", "source_id", "rule", "run_id")),
        Table("quality", "scorecard", (
            _text("run_id", nullable=False), Column("run_at", ts),
            _text("source_system", nullable=False), _text("rule", nullable=False),
            _text("severity"), Column("evaluated", big), Column("failed", big),
            Column("pass_rate", "DOUBLE"),
        ), "(run, source, rule) with rows evaluated, failed, pass rate", contract=True,
            key_columns=("run_id", "source_system", "rule")),
        Table("quality", "validated_rows", (
            _text("scope", "the source, or 'orders'", nullable=False),
            Column("row_hash", "UBIGINT", nullable=False, description="hash of the values "
                   "the suite reads (the id among them)"),
            _text("row_id", "the record's id as the suite sees it"),
            Column("copies", big, description="staged rows with exactly these values"),
            Column("failed", "UBIGINT", description="bit i: the row fails the suite's i-th "
                   "row-level rule"),
            Column("skipped", "UBIGINT", description="bit i: the i-th row-level rule skips "
                   "the row (a missing value, or left out by ignore_row_if)"),
            _RUN_ID, Column("validated_at", ts),
        ), "(scope, distinct validated values): the outcome of every row-level rule, carried "
           "forward by an incremental validation (custpipe.quality.incremental)"),
    )  # fmt: skip


def _mdm_and_recon_tables() -> tuple[Table, ...]:
    ts = "TIMESTAMP"
    return (
        Table("mdm", "customer_xref", (
            _text("source_system", nullable=False), _text("source_id", nullable=False),
            _text("golden_id", nullable=False), _text("match_rule", "the rules that linked it"),
            _RUN_ID,
        ), "source record that was consolidated, with the rules that linked it",
            primary_key=("source_system", "source_id"), contract=True,
            key_columns=("source_system", "source_id", "golden_id")),
        Table("mdm", "match_review", (
            _text("left_source_system"), _text("left_source_id"), _text("right_source_system"),
            _text("right_source_id"), Column("score", "DOUBLE"), _text("explanation"), _RUN_ID,
        ), "pair awaiting a steward, its two records in different clusters: uncertain (the "
           "model's match probability `score` is between the review and auto-merge "
           "thresholds), or linked but kept apart by an exclusion (different valid tax or "
           "national IDs; `score` empty when only a definite rule linked them); `explanation` "
           "(JSON) gives, per compared field, the comparison level and its match weight, and "
           "`kept_apart` / `linked_by` for an exclusion — never the values", contract=True,
            key_columns=("left_*", "right_*", "score")),
        Table("mdm", "steward_decisions", (
            _text("left_source_system", nullable=False), _text("left_source_id", nullable=False),
            _text("right_source_system", nullable=False),
            _text("right_source_id", nullable=False), _text("decision", nullable=False),
            _text("decided_by", nullable=False), Column("decided_at", ts, nullable=False),
            _text("reason", nullable=False),
            _text("decision_id", "the decision's id in the steward store "
                  "(data/steward/steward.sqlite); a split-out's cannot-links share it; empty "
                  "for a decision recorded before the store"),
            _text("origin", "where it was made: workbench, cli or sheet"),
        ), "steward's must-link or cannot-link decision on a pair, with who and why "
           "(imported from the steward store by the nightly run; a split-out of a record "
           "becomes cannot-links between it and every other member of its golden record)"),
        Table("mdm", "steward_imports", (
            _text("decision_id", nullable=False), _text("kind", nullable=False),
            _text("outcome", "imported, or stale: a split-out whose golden record no longer "
                  "holds the record (or holds nothing else)", nullable=False),
            Column("pairs", "INTEGER", description="rows added to mdm.steward_decisions"),
            _RUN_ID, Column("imported_at", ts),
        ), "decision of the steward store imported by a run, with its outcome: a decision is "
           "imported once", primary_key=("decision_id",)),
        Table("mdm", "match_pairs", (
            _text("left_source_system", nullable=False), _text("left_source_id", nullable=False),
            _text("right_source_system", nullable=False),
            _text("right_source_id", nullable=False),
            Column("weight", "DOUBLE", description="match weight without the prior: the sum "
                   "of the compared fields' weights"),
            Column("gammas", "INTEGER[]", description="comparison level per compared field, "
                   "in the model's order"),
            Column("weights", "DOUBLE[]", description="match weight per compared field"),
            Column("tf_weights", "DOUBLE[]", description="term-frequency adjustment per "
                   "adjusted field"),
        ), "candidate pair the model scored at or above the review threshold, kept between "
           "nights so a night scores only the pairs of changed records"),
        Table("mdm", "match_records", (
            _SOURCE_SYSTEM, _SOURCE_ID,
            Column("input_hash", "UBIGINT", description="hash of the record's match input"),
            Column("raw_hash", "BIGINT", description="the staged row's raw_hash when matched"),
            *(_text(c, "match input (custpipe.matching.model.MATCH_INPUT_SQL)")
              for c in _MATCH_COLUMNS),
        ), "record matched by the last consolidation, with what it looked like then: its "
           "staged `raw_hash`, its match input (the canonical match columns) and that input's "
           "hash; a night makes the match input again only for the records whose `raw_hash` "
           "changed"),
        Table("mdm", "match_components", (
            _SOURCE_SYSTEM, _SOURCE_ID,
            _text("component", "source_system:source_id of the first record of its component "
                  "(the records its links joined, before cannot-links and exclusions split "
                  "them)"),
        ), "record matched by the last consolidation, with its component then: an "
           "incremental night reclusters only the components a change touches"),
        Table("mdm", "golden_id_history", (
            _RUN_ID, _text("golden_id"), _text("event"), _text("related_golden_id"),
            Column("members", "BIGINT"), Column("recorded_at", ts),
        ), "golden ID created, merged, split or retired, per run"),
        Table("ops", "stage_runs", (
            _text("stage", nullable=False), _text("scope", "the source, or '' for all",
            nullable=False), _RUN_ID, Column("business_date", "DATE"),
            _text("mode", "'full' or 'incremental'"),
            _text("reason", "why the stage recomputed in full (empty: incremental)"),
            _text("fingerprint", "JSON: hash per part of what the results mean (model, "
                  "settings, suite, code); a changed part forces a full recompute"),
            Column("changed_records", "BIGINT", description="records the run worked on"),
            _text("differences", "JSON: a full recompute's differences from the incremental "
                  "state, rows per table (empty object: identical; null: not compared)"),
            Column("recorded_at", ts),
            _text("inputs", "digest of what the stage read (consolidation: accepted records and "
                  "steward decisions); a night with the same inputs writes nothing"),
        ), "(stage, scope, run): how an incremental stage ran and why"),
        Table("ops", "held_sources", (
            _RUN_ID, _text("source_system", nullable=False), Column("business_date", "DATE"),
            _text("step", "where the source's new data failed: 'extract' or 'staging'"),
            _text("reason", "the failure (an export missing, a column renamed, a mapping "
                  "error); never customer values"),
            Column("held_at", ts),
        ), "(run, source): a source held back by `on_failure: hold`; the run consolidated "
           "and published with its last good staged state (custpipe.holding)"),
        Table("recon", "order_discrepancies", (
            _text("order_id", nullable=False), _text("kind", nullable=False),
            _text("source_system"), _text("other_system"), _text("source_value"),
            _text("other_value"), _text("golden_id"), _text("suggested_fix"), _RUN_ID,
        ), "order finding (`kind`: `status_mismatch`, `amount_mismatch`, `missing_in_<system>`, "
           "`order_number_mismatch` (numbers differ, but golden customer, amount and date within "
           "`reconcile.date_window_days` agree), `unknown_customer`, `customer_quarantined`, "
           "`duplicate_customer`, `duplicate_order`, `line_total_mismatch` (an order's lines do "
           "not add up to its amount), `lines_without_order`, `order_number_missing`, "
           "`unmapped_code` (a status or other code missing from the crosswalk), `invalid_value` "
           "(an amount not a number under the mapping's `number_format`, a currency not ISO "
           "4217, a duplicate id, a required field empty)) with a suggested fix", contract=True,
            key_columns=("order_id", "kind")),
        Table("recon", "order_state", (
            _text("part", "'order', 'xref', 'golden', 'customer' or 'lines'; 'total:<part>': "
                  "that part's rows (copies) and sum of states", nullable=False),
            Column("state", "UBIGINT", description="hash of what the reconciliation read"),
            Column("copies", "BIGINT", description="rows of the part with that state and key"),
            Column("key_hash", "UBIGINT", description="hash of the row's key (record, order "
                   "number or golden ID)"),
            _text("source_system"), _text("source_id"), _text("order_number"),
            _text("customer_ref"), _text("golden_id"),
            _text("run_id", "the run that wrote the input row (staging, consolidation)"),
        ), "what the last reconciliation read (staged orders and their lines, golden customers "
           "of records, ERP numbers, staged customers), as hashes: a night reconciles again "
           "the orders whose inputs changed and the orders related to them"),
        Table("mdm", "published_rows", (
            _text("target", "the ERP table published to", nullable=False),
            _text("golden_id", nullable=False),
            _text("row_hash", "the target row's row_hash ('retired' for a retired row)"),
            _text("status", "the target row's status"),
            _text("golden_run_id", "the run_id of the golden record it was published from"),
        ), "(target, golden_id): what the target holds after the last publish custpipe wrote, "
           "so an incremental publish hashes only golden records rebuilt since "
           "(custpipe.publish.state); no primary key: an index would make rewriting it slow"),
        Table("mdm", "publish_marks", (
            _text("target", "the ERP table published to", nullable=False),
            _RUN_ID, Column("rows", "BIGINT"), Column("retired", "BIGINT"),
            Column("checksum", "BIGINT", description="sum of the first four hex digits of "
                   "every row_hash"),
            Column("last_published_at", ts, description="the newest published_at"),
            _text("log_run_id", "the run of the newest row of <target>_LOG"),
            Column("log_published_at", ts), _text("log_content_hash"),
            Column("recorded_at", ts),
        ), "(target): the target's mark after the last publish custpipe wrote; an incremental "
           "publish reads the target's mark (one aggregate query) and publishes in full when "
           "it differs", primary_key=("target",)),
    )  # fmt: skip


def tables(catalogue: Catalogue = CATALOGUE) -> tuple[Table, ...]:
    """Every warehouse table, in DDL order."""
    fixed = _fixed_tables()
    return (
        *(_staging_table(d, catalogue) for d in DATASETS),
        *fixed,
        _golden_table(catalogue),
        *_mdm_and_recon_tables(),
    )


def table(name: str, catalogue: Catalogue = CATALOGUE) -> Table:
    """The warehouse table `schema.name`."""
    for t in tables(catalogue):
        if t.qualified_name == name:
            return t
    raise KeyError(f"no warehouse table {name!r} in the catalogue")


def contract_tables(catalogue: Catalogue = CATALOGUE) -> tuple[str, ...]:
    """The tables other tools read (their names and key columns are a public contract)."""
    return tuple(t.qualified_name for t in _contract_order(catalogue))


# the README's (and table_counts') order of the contract tables
_CONTRACT_ORDER = (
    "staging.customers",
    "quality.quarantine",
    "mdm.golden_customers",
    "mdm.customer_xref",
    "mdm.match_review",
    "recon.order_discrepancies",
    "quality.scorecard",
)


def _contract_order(catalogue: Catalogue) -> list[Table]:
    contract = {t.qualified_name: t for t in tables(catalogue) if t.contract}
    ordered = [contract.pop(n) for n in _CONTRACT_ORDER if n in contract]
    return ordered + list(contract.values())


# -- the published ERP table ----------------------------------------------------------------


def published_positions(catalogue: Catalogue = CATALOGUE) -> dict[str, Published]:
    """Golden column -> its place and length in the ERP table."""
    placed = {
        f.name: f.published
        for f in catalogue.fields
        if f.dataset == "customers" and f.golden and f.published
    }
    placed |= _PUBLISHED_GOLDEN_COLUMNS
    positions = sorted(p.position for p in placed.values())
    if positions != list(range(1, len(placed) + 1)):
        raise ValueError(f"published positions must be 1..{len(placed)}, are {positions}")
    return dict(sorted(placed.items(), key=lambda item: item[1].position))


def published_columns(catalogue: Catalogue = CATALOGUE) -> tuple[str, ...]:
    """The golden columns published to the ERP, in the ERP table's (and row hash's) order."""
    return tuple(published_positions(catalogue))


def published_lengths(catalogue: Catalogue = CATALOGUE) -> dict[str, int]:
    """The most characters each published column holds."""
    return {name: p.length for name, p in published_positions(catalogue).items()}


def published_text_bounds(catalogue: Catalogue = CATALOGUE) -> dict[str, int]:
    """Staged customer column -> the most characters of the published free-text column its
    value reaches unchanged, in the ERP table's order: what the staged suites' rule
    `value_fits_published_length` checks (codes are held by their in-set rules instead)."""
    return {
        p.staged_as or name: p.length
        for name, p in published_positions(catalogue).items()
        if not p.coded
    }


def published_table(catalogue: Catalogue = CATALOGUE) -> Table:
    """The ERP inbound table (its name is configured: `publish.table`): one row per golden
    customer. Types are portable SQL; text columns carry their length."""
    golden = {c.name: c for c in _golden_table(catalogue).columns}
    return Table(
        "",
        "published",
        (
            Column("golden_id", "VARCHAR", False, golden["golden_id"].description, 32),
            *(
                Column(n, "VARCHAR", True, golden[n].description, p.length, p.added_later)
                for n, p in published_positions(catalogue).items()
            ),
            Column(
                "merged_into",
                "VARCHAR",
                True,
                "for retired rows: the golden ID that absorbed it",
                32,
                added_later=True,  # older custpipe versions created the table without it
            ),
            Column("row_hash", "VARCHAR", False, "SHA-256 of the published values", 64),
            Column("published_at", "TIMESTAMP", False, "when the row was written (UTC)"),
            Column("run_id", "VARCHAR", True, "the run that wrote the row", 64),
        ),
        "golden customer as the ERP reads it (retired rows stay, with status 'retired')",
        primary_key=("golden_id",),
    )


def columns_added_later(catalogue: Catalogue = CATALOGUE) -> tuple[str, ...]:
    """Published columns an existing ERP table may lack: the publish adds them itself."""
    return tuple(c.name for c in published_table(catalogue).columns if c.added_later)


def publish_log_table() -> Table:
    """The publish log beside the ERP table (`<table>_LOG`): one row per publish."""
    count = "INTEGER"
    return Table(
        "",
        "published_LOG",
        (
            Column("run_id", "VARCHAR", False, "the publishing run", 64),
            Column("published_at", "TIMESTAMP", False, "when (UTC); a run may publish twice"),
            Column("inserted", count, False),
            Column("updated", count, False),
            Column("retired", count, False),
            Column("unchanged", count, False),
            Column("content_hash", "VARCHAR", False, "hash of the table's content after", 64),
        ),
        "publish, with its counts",
        primary_key=("run_id", "published_at"),
    )


# -- generated text -------------------------------------------------------------------------


def _column_sql(column: Column) -> str:
    return f"{column.name} {column.type}" + ("" if column.nullable else " NOT NULL")


def table_ddl(t: Table) -> str:
    """`CREATE TABLE IF NOT EXISTS` of one warehouse table."""
    lines = [_column_sql(c) for c in t.columns]
    if t.primary_key:
        lines.append(f"PRIMARY KEY ({', '.join(t.primary_key)})")
    body = ",\n    ".join(lines)
    return f"-- {t.description}\nCREATE TABLE IF NOT EXISTS {t.qualified_name} (\n    {body}\n);\n"


def ddl(catalogue: Catalogue = CATALOGUE) -> str:
    """The warehouse DDL: schemas and every table (idempotent)."""
    all_tables = tables(catalogue)
    schemas = dict.fromkeys(t.schema for t in all_tables)
    head = "".join(f"CREATE SCHEMA IF NOT EXISTS {s};\n" for s in schemas)
    return head + "\n" + "\n".join(table_ddl(t) for t in all_tables)


def contract_markdown(catalogue: Catalogue = CATALOGUE) -> str:
    """The README's warehouse-contract table and its supporting tables (markdown)."""
    rows = ["| table | one row per | key columns |", "|---|---|---|"]
    for t in _contract_order(catalogue):
        keys = ", ".join(f"`{k}`" for k in t.key_columns)
        rows.append(f"| `{t.qualified_name}` | {t.description} | {keys} |")
    rows += ["", "Supporting tables:", "", "| table | one row per |", "|---|---|"]
    rows += [
        f"| `{t.qualified_name}` | {t.description} |" for t in tables(catalogue) if not t.contract
    ]
    return "\n".join(rows) + "\n"


def check(catalogue: Catalogue = CATALOGUE) -> None:
    """Raise ValueError where the catalogue contradicts itself (names, keys, published)."""
    for t in tables(catalogue):
        names = t.column_names
        if len(set(names)) != len(names):
            raise ValueError(f"{t.qualified_name}: a column is declared twice")
        for key in (*t.primary_key, *t.key_columns):
            if not fnmatch.filter(names, key):
                raise ValueError(f"{t.qualified_name}: key {key!r} is no column")
    for f in catalogue.fields:
        if f.published and not f.golden:
            raise ValueError(f"field {f.name}: only a golden attribute can be published")
    published_positions(catalogue)


check()

"""The table catalogue: the warehouse, the published table and the README derive from it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from custpipe import catalogue, warehouse
from custpipe.catalogue import CATALOGUE, Field, Published
from custpipe.publish import erp

README = Path(__file__).resolve().parents[1] / "README.md"


def _columns(con, schemas) -> dict[str, list[tuple[str, str, bool]]]:
    """table -> [(column, type, nullable)] in column order, as the database has them."""
    rows = con.execute(
        "SELECT table_schema || '.' || table_name, column_name, data_type, is_nullable = 'YES' "
        "FROM information_schema.columns WHERE table_schema IN (SELECT unnest(?)) "
        "ORDER BY table_schema, table_name, ordinal_position",
        [list(schemas)],
    ).fetchall()
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, data_type, nullable in rows:
        out.setdefault(table, []).append((column, data_type, nullable))
    return out


def _primary_keys(con) -> dict[str, tuple[str, ...]]:
    rows = con.execute(
        "SELECT schema_name || '.' || table_name, constraint_column_names "
        "FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return {table: tuple(columns) for table, columns in rows}


def test_a_new_warehouse_has_exactly_the_catalogues_tables(tmp_path):
    tables = catalogue.tables()
    with warehouse.connect(tmp_path / "warehouse.duckdb") as con:
        found = _columns(con, {t.schema for t in tables})
        keys = _primary_keys(con)
    expected = {t.qualified_name: [(c.name, c.type, c.nullable) for c in t.columns] for t in tables}
    assert found == expected
    assert keys == {t.qualified_name: t.primary_key for t in tables if t.primary_key}
    assert set(warehouse.CONTRACT_TABLES) == {t.qualified_name for t in tables if t.contract}


def test_migrate_adds_the_columns_an_older_warehouse_lacks(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    old = duckdb.connect(str(path))
    old.execute(warehouse.DDL)
    old.execute("INSERT INTO quality.validation_runs (run_id, rows) VALUES ('r1', 5)")
    old.execute("ALTER TABLE quality.validation_runs DROP COLUMN volume_ok")
    old.execute("ALTER TABLE staging.customers DROP COLUMN record_hash")
    old.close()
    with warehouse.connect(path) as con:  # connect migrates
        runs = con.execute("SELECT run_id, rows, volume_ok FROM quality.validation_runs").fetchall()
        assert runs == [("r1", 5, None)]  # the old rows kept, the new column empty
        assert _columns(con, {"staging"})["staging.customers"][-1] == (
            "record_hash",
            "VARCHAR",
            True,
        )
        assert warehouse.migrate(con) == []  # nothing left to add


def test_connect_recreates_a_table_and_a_schema_a_warehouse_lacks(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path) as con:
        con.execute("INSERT INTO quality.validation_runs (run_id, rows) VALUES ('r1', 5)")
        con.execute("DROP TABLE mdm.match_review")
        con.execute("DROP SCHEMA recon CASCADE")
    with warehouse.connect(path) as con:  # the catalogue's tables are all there again
        found = _columns(con, {t.schema for t in catalogue.tables()})
        assert set(found) == {t.qualified_name for t in catalogue.tables()}
        assert con.execute("SELECT run_id FROM quality.validation_runs").fetchall() == [("r1",)]


# a canonical field as a developer would add it: the one edit in custpipe/catalogue.py
WEBSITE = Field(
    "website", "customers", "the customer's web site", validated=True, golden=True,
    published=Published(14, 200),
)  # fmt: skip


def test_adding_a_canonical_field_is_one_edit():
    extended = CATALOGUE.with_field(WEBSITE, after="email")

    assert "website" in catalogue.canonical_fields("customers", extended)
    staged = catalogue.staged_columns("customers", extended)
    assert staged[staged.index("email_valid") + 1 : staged.index("phone")] == (
        "website",
        "website_valid",
    )
    assert catalogue.golden_attributes(extended)["website"] == "website_valid"
    assert catalogue.published_columns(extended)[-1] == "website"
    assert catalogue.published_lengths(extended)["website"] == 200
    published = {c.name: c for c in catalogue.published_table(extended).columns}
    assert published["website"].length == 200

    con = duckdb.connect()
    con.execute(catalogue.ddl(extended))
    found = _columns(con, {"staging", "mdm"})
    assert ("website_valid", "BOOLEAN", True) in found["staging.customers"]
    assert ("website", "VARCHAR", True) in found["mdm.golden_customers"]

    # an existing warehouse gets the field's columns from migrate
    current = duckdb.connect()
    current.execute(warehouse.DDL)
    added = warehouse.migrate(current, catalogue.tables(extended))
    assert added == [
        "staging.customers.website",
        "staging.customers.website_valid",
        "mdm.golden_customers.website",
    ]


def test_the_published_table_is_the_catalogues():
    table = erp.target_table("ERP_CUSTOMERS", sa.MetaData())
    shape = catalogue.published_table()
    assert [c.name for c in table.columns] == list(shape.column_names)
    for column, declared in zip(table.columns, shape.columns, strict=True):
        assert getattr(column.type, "length", None) == declared.length, column.name
        assert column.nullable == (declared.nullable and not column.primary_key), column.name
    assert [c.name for c in table.primary_key] == list(shape.primary_key)
    assert shape.column_names[1:-4] == erp.PUBLISHED_COLUMNS  # between golden_id and merged_into
    log = erp.log_table("ERP_CUSTOMERS", sa.MetaData())
    assert log.name == "ERP_CUSTOMERS_LOG"
    assert [c.name for c in log.primary_key] == ["run_id", "published_at"]


def test_the_readme_holds_the_generated_contract_table():
    text = README.read_text(encoding="utf-8")
    section = text.split("## The warehouse contract", 1)[1].split("\n## ", 1)[0]
    assert catalogue.contract_markdown() in section, (
        "regenerate the table: python -c 'from custpipe import catalogue; "
        "print(catalogue.contract_markdown())'"
    )


@pytest.mark.parametrize(
    "field, problem",
    [
        (Field("website", "customers", "web", published=Published(14, 200)), "golden"),
        (Field("website", "customers", "web", golden=True, published=Published(3, 9)), "1..14"),
        (Field("tax_id_valid", "customers", "clash"), "twice"),
    ],
)
def test_a_contradicting_catalogue_is_refused(field, problem):
    extended = CATALOGUE.with_field(field, after="tax_id")
    with pytest.raises(ValueError, match=problem):
        catalogue.check(extended)

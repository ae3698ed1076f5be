"""The published columns custpipe adds to an existing ERP table itself are declared in the
catalogue (`added_later` on the published table's column), not kept in a list of their own."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from custpipe import catalogue
from custpipe.catalogue import Field, Published
from custpipe.publish import erp


def test_the_columns_custpipe_adds_itself_come_from_the_catalogue():
    assert erp._ADDED_LATER == catalogue.columns_added_later() == ("merged_into",)
    shape = {c.name: c for c in catalogue.published_table().columns}
    # ALTER TABLE ... ADD COLUMN on a table with rows: only a nullable column can be added
    assert all(shape[name].nullable for name in erp._ADDED_LATER)


@pytest.mark.parametrize(("added_later", "expected"), [(False, ()), (True, ("website",))])
def test_a_new_published_field_is_added_to_an_existing_erp_table_only_when_declared_so(
    added_later, expected
):
    published = Published(14, 200, added_later=added_later)
    website = Field("website", "customers", "web", golden=True, published=published)
    extended = catalogue.CATALOGUE.with_field(website)
    assert "website" in catalogue.published_table(extended).column_names
    assert catalogue.columns_added_later(extended) == (*expected, "merged_into")


def _problems_without(column: str) -> list[str]:
    """shape_problems of an existing ERP table that has every published column but `column`."""
    shape = catalogue.published_table()
    older = dataclasses.replace(shape, columns=tuple(c for c in shape.columns if c.name != column))
    engine = sa.create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            erp.sa_table(older, "ZCUST_INBOUND", sa.MetaData()).create(conn)
            return erp.shape_problems(conn, erp.target_table("ZCUST_INBOUND", sa.MetaData()))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("merged_into", []),  # declared added_later: the publish adds it
        ("city", ["column city is missing (expected VARCHAR(200))"]),
        ("run_id", ["column run_id is missing (expected VARCHAR(64))"]),
    ],
)
def test_only_a_column_declared_added_later_may_be_missing_from_the_erp_table(column, expected):
    assert _problems_without(column) == expected

"""The publish reads only its columns, and the merge successors are computed in DuckDB."""

from __future__ import annotations

import pandas as pd
import pytest

from custpipe.matching.golden_ids import successors
from custpipe.publish.erp import PUBLISHED_COLUMNS
from custpipe.publish.inputs import golden_for_publish, merge_successors
from custpipe.warehouse import append_rows


@pytest.fixture
def con(empty_warehouse):
    return empty_warehouse


def history(con, events: list[tuple[str, str, str | None]]) -> pd.DataFrame:
    """Append (event, golden_id, related) rows, one night apart; the rows as publish read them."""
    rows = pd.DataFrame(
        [
            {
                "run_id": f"r{i}",
                "event": e,
                "golden_id": g,
                "related_golden_id": r,
                "members": 1,
                "recorded_at": pd.Timestamp("2026-11-01") + pd.Timedelta(days=i),
            }
            for i, (e, g, r) in enumerate(events)
        ]
    )
    append_rows(con, "mdm.golden_id_history", rows)
    return con.execute(
        "SELECT event, golden_id, related_golden_id FROM mdm.golden_id_history ORDER BY recorded_at"
    ).df()


def test_successors_in_sql_equal_the_pandas_ones_on_chains_of_merges(con):
    read = history(
        con,
        [
            ("created", "GA", None),
            ("merged", "GA", "GB"),  # GA -> GB -> GD -> GE: a chain
            ("merged", "GB", "GD"),
            ("split", "GX", "GD"),
            ("merged", "GD", "GE"),
            ("merged", "GF", "GG"),  # GF merged twice: the later merge counts
            ("merged", "GF", "GH"),
            ("merged", "GP", "GQ"),  # a cycle stops before repeating itself
            ("merged", "GQ", "GP"),
            ("retired", "GZ", None),
        ],
    )
    expected = successors(read)
    assert expected["GA"] == "GE" and expected["GF"] == "GH" and len(expected) == 6
    assert merge_successors(con) == expected


def test_no_merges_no_successors(con):
    history(con, [("created", "GA", None)])
    assert (
        merge_successors(con)
        == {}
        == successors(con.execute("SELECT * FROM mdm.golden_id_history").df())
    )


def test_golden_for_publish_reads_only_the_published_columns_in_id_order(con):
    golden = pd.DataFrame(
        {
            "golden_id": ["G2", "G1"],
            "name": ["B", "A"],
            "attribute_sources": ['{"name": "crm:1"}', "{}"],
            "status": ["active", None],
        }
    )
    append_rows(con, "mdm.golden_customers", golden)
    read = golden_for_publish(con)
    assert list(read.columns) == ["golden_id", *PUBLISHED_COLUMNS]
    assert read["golden_id"].tolist() == ["G1", "G2"]
    assert read["status"].tolist() == [None, "active"]

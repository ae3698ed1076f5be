"""Clustering and survivorship on Spark (engine: spark) against the DuckDB engine, on
hand-made records the demo does not make: updates a microsecond apart, missing stamps and
attributes, identifiers JSON must escape, a missing ERP source, long chains of links."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest

from custpipe.config import SparkConfig
from custpipe.matching.linking import connected_components
from custpipe.matching.survivorship import (
    GOLDEN_ATTRIBUTES,
    SURVIVORSHIP_COLUMNS,
    Survivorship,
    survivorship_sql,
)
from custpipe.matching.workspace import MatchWorkspace
from custpipe.spark.exchange import parts
from custpipe.spark.runners import InSession
from custpipe.spark.sql import to_spark

HOSTILE = [
    None,
    "Müller & Söhne",
    'O\'Brien "Ltd"',
    "back\\slash",
    "tab\there",
    "new\nline",
    "ctl\x01char",
    "emoji 😀",
    "",
    "  ",
    "zeta",
    "Alpha",
]
SOURCES = {"erp": 1, "crm": 2, "sales": 3, "service": 3}


def _records(seed: int, clusters: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(nodes: node + the columns survivorship reads, labels: node, label) with ties,
    microsecond-apart stamps, missing values and identifiers JSON has to escape."""
    rng = random.Random(seed)
    base = datetime(2026, 11, 30, 23, 59, 59, 999_999)
    rows, labels, node = [], [], 0
    for label in range(clusters):
        for _ in range(rng.randint(1, 6)):
            node += 1
            stamp = rng.choice(
                [None, base, base + timedelta(microseconds=1), base - timedelta(days=400)]
            )
            row = {
                "node": node,
                "source_system": rng.choice(list(SOURCES)),
                "source_id": rng.choice(["1", "01", 'x"y', "a\\b", "ü-7", "😀", "id\x02"])
                + f"-{node}",
                "is_deleted": rng.random() < 0.2,
                "source_updated_at": stamp,
            }
            for attribute, flag in GOLDEN_ATTRIBUTES.items():
                row[attribute] = rng.choice(HOSTILE)
                if flag:
                    row[flag] = rng.choice([True, False, None])
            rows.append(row)
            labels.append({"node": node, "label": 1000 + label})
    nodes = pd.DataFrame(rows)[["node", *SURVIVORSHIP_COLUMNS]]
    nodes["source_updated_at"] = pd.to_datetime(nodes["source_updated_at"])
    return nodes, pd.DataFrame(labels)


SURVIVORSHIPS = [
    Survivorship(),
    Survivorship(
        default=("recent", "complete"),
        attributes={"name": ("frequent", "trust"), "email": ("valid", "recent", "frequent")},
    ),
]


@pytest.mark.parametrize("erp_source", ["erp", None])
@pytest.mark.parametrize("rules", SURVIVORSHIPS, ids=["default", "recent-complete-frequent"])
def test_survivorship_on_spark_is_duckdbs_to_the_byte(spark, tmp_path, rules, erp_source):
    nodes, labels = _records(seed=7)
    trust = pd.DataFrame({"source_system": list(SOURCES), "trust": list(SOURCES.values())})
    sql = survivorship_sql(rules)
    with duckdb.connect() as con:
        for name, frame in {"nodes": nodes, "labels": labels, "trust": trust}.items():
            con.register(name, frame)
        want = con.execute(f"{sql} ORDER BY label", {"erp_source": erp_source}).df()
        runner = InSession(SparkConfig(), tmp_path)
        with runner.exchange() as work:  # the tables as Parquet, as the warehouse writes them
            tables = {n: work.put(con, n, f"FROM {n}") for n in ("nodes", "labels", "trust")}
            runner.query(sql, tables, work.result, {"erp_source": erp_source})
            got = con.execute(f"FROM {parts(work.result)} ORDER BY label").df()
    assert not list((tmp_path / "tables").iterdir())  # the work's folder is removed
    assert len(want) == 60 and want["attribute_sources"].str.contains(r"\\u0001|\\\"").any()
    assert want["erp_customer_number"].notna().any() == (erp_source is not None)
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_dtype=False)


def test_an_empty_result_comes_back_as_no_rows_with_its_columns(spark, tmp_path):
    """A query that finds nothing (no cluster touched, no finding) still leaves a Parquet
    part with the result's columns, which the warehouse reads as no rows."""
    nodes, labels = _records(seed=7)
    trust = pd.DataFrame({"source_system": list(SOURCES), "trust": list(SOURCES.values())})
    sql = survivorship_sql(SURVIVORSHIPS[0])
    with duckdb.connect() as con:
        for name, frame in {"nodes": nodes, "labels": labels, "trust": trust}.items():
            con.register(name, frame)
        want = con.execute(f"DESCRIBE {sql}", {"erp_source": "erp"}).fetchall()
        runner = InSession(SparkConfig(), tmp_path)
        with runner.exchange() as work:
            tables = {
                "nodes": work.put(con, "nodes", "FROM nodes"),
                "labels": work.put(con, "labels", "FROM labels WHERE false"),
                "trust": work.put(con, "trust", "FROM trust"),
            }
            runner.query(sql, tables, work.result, {"erp_source": "erp"})
            got = con.execute(f"SELECT count(*) FROM {parts(work.result)}").fetchone()
            columns = [c[0] for c in con.execute(f"DESCRIBE FROM {parts(work.result)}").fetchall()]
    assert got == (0,) and columns == [c[0] for c in want]


def test_the_rewrites_are_where_values_differ():
    """What sqlglot alone would write returns other values on Spark; custpipe's does not."""
    sql = to_spark("SELECT epoch(t), json_object('a', x)::VARCHAR FROM nodes", {"nodes": "v"})
    assert "UNIX_MICROS(CAST(t AS TIMESTAMP)) / 1e6" in sql
    assert "TO_JSON(NAMED_STRUCT('a', x))" in sql and "FROM v" in sql


def _graph(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """1,500 nodes: random links, a 300-node chain in shuffled order (many rounds), duplicate
    and reversed links, a link of a node to itself and one to a node that is not there, and
    nodes 1,301-1,500 with no link."""
    rng = random.Random(seed)
    nodes = list(range(1, 1501))
    edges = [(rng.choice(nodes[:900]), rng.choice(nodes[:900])) for _ in range(500)]
    chain = nodes[1000:1300]
    rng.shuffle(chain)
    edges += list(zip(chain, chain[1:], strict=False))
    edges += [(b, a) for a, b in edges[:50]] + edges[:20]
    edges = [(a, b) for a, b in edges if a != b] + [(5, 5), (7, 99_999)]  # to itself, outside
    return pd.DataFrame({"node": nodes}), pd.DataFrame(edges, columns=["a", "b"])


def test_clustering_on_spark_labels_as_duckdb_does(spark, tmp_path):
    nodes, edges = _graph(seed=3)
    labels = {}
    for engine, runner in [("duckdb", None), ("spark", InSession(SparkConfig(), tmp_path))]:
        with duckdb.connect() as con:
            ws = MatchWorkspace(con, records=len(nodes))
            con.execute(f"CREATE TEMP TABLE {ws.nodes} AS SELECT node::BIGINT AS node FROM nodes")
            con.execute(
                f"CREATE TEMP TABLE {ws.edges} AS SELECT a::BIGINT a, b::BIGINT b FROM edges"
            )
            rounds = connected_components(ws, spark=runner)
            labels[engine] = con.execute(f"SELECT * FROM {ws.labels} ORDER BY node").df()
            # rounds grow with the log of the longest chain (label spreading took 145 here)
            assert 2 <= rounds <= 20
            # a scope (whole components) is labelled alone
            con.execute(
                f"CREATE TEMP TABLE {ws.scope} AS SELECT node FROM {ws.labels} WHERE label = 1001"
            )
            connected_components(ws, ws.scope, spark=runner)
            scoped = con.execute(
                f"SELECT count(*), max(label), min(label) FROM {ws.labels}"
            ).fetchone()
            assert scoped == (300, 1001, 1001)
            # a scope of nodes without a link: each its own component
            alone = "SELECT 1400 + range AS node FROM range(1, 101)"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {ws.scope} AS {alone}")
            connected_components(ws, ws.scope, spark=runner)
            unlinked = con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE node = label) FROM {ws.labels}"
            ).fetchone()
            assert unlinked == (100, 100)
            # an empty scope: nothing labelled (on Spark: no job)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {ws.scope} AS {alone} WHERE false")
            connected_components(ws, ws.scope, spark=runner)
            assert con.execute(f"SELECT count(*) FROM {ws.labels}").fetchone() == (0,)
    pd.testing.assert_frame_equal(labels["spark"], labels["duckdb"], check_dtype=False)
    assert not list((tmp_path / "tables").iterdir())  # every piece of work's folder removed
    assert labels["duckdb"]["label"].nunique() < 1500 - 300

"""engine: spark maps and standardises the sources' rows on Spark and scores pairs with
Splink's Spark backend, and gives the DuckDB engine's tables exactly: the demo's first and
second nights equal the recorded fingerprints (the same ones the DuckDB engine is held to),
and the stored pairs equal DuckDB's to the bit."""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe_tests.conftest import make_deployment, run_nightly
from custpipe_tests.test_output_identity import (
    FIRST_NIGHT,
    SECOND_NIGHT,
    _assert_equal,
    demo_fingerprint,
    second_night,
)

# names that differ only in ways the Splink jar and DuckDB score differently (accents,
# transpositions, prefixes), and edge cases: empty, one letter, identical, no common letter
NAMES = [
    ("anna hoffmann", "anna sahmidt"),
    ("martha", "marhta"),
    ("dwayne", "duane"),
    ("dixon", "dicksonx"),
    ("jörg müller", "jorg muller"),
    ("李小龙", "李小竜"),
    ("", "a"),
    ("a", "a"),
    ("abc", "xyz"),
    ("müller gmbh & co. kg", "mueller gmbh"),
    (None, "x"),
]


def test_the_similarity_functions_are_duckdbs_to_the_bit(spark):
    from custpipe.spark.scoring import DUCKDB_FUNCTIONS, register_duckdb_similarities

    register_duckdb_similarities(spark)
    pairs = pd.DataFrame(NAMES, columns=["a", "b"])
    frame = spark.createDataFrame(pa.Table.from_pandas(pairs))
    frame.createOrReplaceTempView("names")
    con = duckdb.connect()
    con.register("names", pairs)
    for spark_name, (duckdb_name, _) in DUCKDB_FUNCTIONS.items():
        got = spark.sql(f"SELECT a, b, {spark_name}(a, b) AS v FROM names").toPandas()
        want = con.execute(f"SELECT a, b, {duckdb_name}(a, b) AS v FROM names").df()
        merged = got.merge(want, on=["a", "b"], suffixes=("_spark", "_duckdb"), how="outer")
        assert len(merged) == len(NAMES) - 1 or len(merged) == len(NAMES)
        for row in merged.itertuples():
            if pd.isna(row.v_duckdb):
                assert pd.isna(row.v_spark), (spark_name, row)
            else:  # equal floats, not close ones
                assert float(row.v_spark) == float(row.v_duckdb), (spark_name, row)


def test_the_jar_alone_would_not_be_duckdbs(spark):
    """Why custpipe replaces the jar's functions: on this pair they disagree by 0.13."""
    from splink.backends.spark import SparkAPI

    SparkAPI(spark_session=spark)  # registers the jar's functions, as Splink does
    sql = "('anna hoffmann', 'anna sahmidt')"
    jar = spark.sql(f"SELECT jaro_winkler{sql} AS v").collect()[0]["v"]
    ours = duckdb.execute(f"SELECT jaro_winkler_similarity{sql}").fetchone()[0]
    assert abs(jar - ours) > 0.1


@pytest.fixture(scope="module")
def spark_demo(tmp_path_factory, spark):
    """The demo deployment of the shared fixture (same seed, same stricter auto-merge), on
    engine: spark."""
    root = tmp_path_factory.mktemp("spark-demo")
    config = root / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    pipeline = config / "pipeline.yaml"
    text = pipeline.read_text(encoding="utf-8")
    assert "auto_merge: 0.99 " in text and "engine: duckdb " in text
    text = text.replace("auto_merge: 0.99 ", "auto_merge: 0.99999 ")
    pipeline.write_text(text.replace("engine: duckdb ", "engine: spark "), encoding="utf-8")
    return make_deployment(root, config_dir=config)


def _pairs(settings) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute("SELECT * FROM mdm.match_pairs ORDER BY ALL").df()


def test_spark_nights_equal_the_duckdb_engines_tables(spark_demo, demo_run):
    import dagster as dg

    duckdb_deployment, _, _ = demo_run
    instance = dg.DagsterInstance.ephemeral()
    first = run_nightly(spark_demo.settings, instance)
    assert first.success
    golden = first.asset_materializations_for_node("consolidated")[0].metadata
    assert golden["pair_scoring"].value == "spark (master local[2])"
    assert golden["clustering_and_survivorship"].value == "spark (master local[2])"
    assert golden["clustering_rounds"].value >= 2  # Splink's iterations, counted
    staged = first.asset_materializations_for_node("staging__erp")[0].metadata
    assert staged["mapped_on"].value == "spark (master local[2])"
    reconciled = first.asset_materializations_for_node("recon__order_discrepancies")[0].metadata
    assert reconciled["findings_made_on"].value == "spark (master local[2])"
    quality = first.asset_materializations_for_node("quality__erp")[0].metadata
    # spark.validate_min_rows is not set: GX stays on pandas, and says so
    assert quality["gx_engine"].value == "pandas"
    assert golden["records_scored_again"].value > 100
    _assert_equal(demo_fingerprint(spark_demo.settings), FIRST_NIGHT)
    stored, expected = _pairs(spark_demo.settings), _pairs(duckdb_deployment.settings)
    assert len(stored) > 100
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)
    # an incremental night on Spark: only the pairs of changed records are scored again
    second = second_night(spark_demo, instance)
    assert second.success
    golden = second.asset_materializations_for_node("consolidated")[0].metadata
    assert golden["mode"].value == "incremental"
    assert golden["pair_scoring"].value == "spark (master local[2])"
    assert 0 < golden["records_scored_again"].value < 300
    reconciled = second.asset_materializations_for_node("recon__order_discrepancies")[0].metadata
    assert reconciled["orders_reconciled"].value != "all"  # a scope, on Spark
    _assert_equal(demo_fingerprint(spark_demo.settings), SECOND_NIGHT)

"""The same GX suites on Spark DataFrames: every suite of expectations/ (custpipe's own
expectation types among them: E.164 phones, tax-ID check digits, published lengths, formula
payloads) gives on Spark the outcome it gives on pandas — the same rules, counts and failed
ids in the same order — on the demo's raw extracts, staged customers, orders and golden
records."""

from __future__ import annotations

import json
import shutil

import duckdb
import pandas as pd
import pytest

from custpipe.config import load_config
from custpipe.quality import incremental as inc
from custpipe.quality.gx_runner import (
    OnSpark,
    columns_named,
    load_suite_names,
    read_suite,
    validate_frame,
)
from custpipe.quality.validate import GOLDEN_TARGET, read_landing_columns
from custpipe.sources.extract import latest_landing
from custpipe.warehouse import CURRENT_QUARANTINE

#: the ERP's raw suite here (each source's raw suite is of the same kinds); its staged suite,
#: which carries every kind of rule, in the test of validate_source below (GX on Spark takes
#: 5-10 s a suite on local[2], so the tests keep to these)
SOURCES = ("erp",)


def _frames(settings):
    """(suite, frame, id column) for the raw suites of SOURCES, the orders and the golden
    records, as the nightly hands them to GX."""
    suites = load_suite_names(settings.expectations_dir)
    sources = load_config(settings.config_dir).sources
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for source in SOURCES:
            raw = f"raw_{source}"
            if raw in suites:
                rules = read_suite(settings.expectations_dir, raw)
                landing = latest_landing(settings, source, "customers")
                frame = read_landing_columns(landing, columns_named(rules))
                yield raw, frame, sources[source].customers.id
        for target, suite in ((inc.orders_target(), "orders"), (GOLDEN_TARGET, "golden_customers")):
            suite_dict = read_suite(settings.expectations_dir, suite)
            columns = inc.suite_frame_columns(con, target, suite_dict)
            yield suite, inc.fetch_all(con, target, columns), target.id_column


def test_every_suite_gives_the_same_outcome_on_spark_as_on_pandas(spark, demo_run, tmp_path):
    settings = demo_run[0].settings
    gx_dir = tmp_path / "gx"
    shutil.copytree(settings.gx_dir, gx_dir)
    failing = 0
    for suite, clean, id_column in _frames(settings):
        # and damaged: a row's values emptied, another row's id repeated, a third's last
        frame = clean.copy()
        others = [c for c in frame.columns if c != id_column]
        frame.loc[0, others] = None
        frame.loc[1, id_column] = frame.loc[2, id_column]
        frame.loc[3, others[-1]] = "=HYPERLINK(1)"
        kwargs = {
            "expectations_dir": settings.expectations_dir,
            "gx_dir": gx_dir,
            "id_column": id_column,
            "build_docs": False,
        }
        on_pandas = validate_frame(frame, suite, **kwargs)
        on_spark = validate_frame(frame, suite, spark=OnSpark(lambda: spark, 0), **kwargs)
        assert on_spark.success == on_pandas.success, suite
        assert on_spark.outcomes == on_pandas.outcomes, suite
        failing += sum(o.failed > 0 for o in on_pandas.outcomes)
    assert failing >= 5  # rules with failing rows, not only clean ones, were compared


def test_a_table_shape_rule_reads_column_names_on_spark(spark, tmp_path):
    """A rule on the table's columns fails alike; a frame with a dotted column name (which
    GX's Spark engine reports quoted) stays on pandas for such a rule."""
    frame = pd.DataFrame({"source_id": ["1", "2"], "name": ["a", None], "address.zip": ["1", "2"]})
    (tmp_path / "exp").mkdir()
    suite = {
        "name": "shape",
        "id": "0e3b5f6a-7c1d-4e2f-8a9b-1c2d3e4f5a6b",
        "meta": {},
        "notes": None,
        "expectations": [
            {
                "type": "expect_table_columns_to_match_set",
                "kwargs": {"column_set": ["source_id", "name", "missing"], "exact_match": True},
                "meta": {"rule": "columns", "severity": "block"},
                "id": "5c6f3c7e-0d7c-4b53-9d0c-2f6a1e3b8a41",
            }
        ],
    }
    (tmp_path / "exp" / "shape.json").write_text(json.dumps(suite))
    kwargs = {"expectations_dir": tmp_path / "exp", "gx_dir": tmp_path / "gx", "build_docs": False}
    on_pandas = validate_frame(frame, "shape", **kwargs)
    on_spark = validate_frame(frame, "shape", spark=OnSpark(lambda: spark, 0), **kwargs)
    assert not on_pandas.success and on_spark.outcomes == on_pandas.outcomes
    dotted = validate_frame(
        frame.rename(columns={"name": "a.name"}), "shape", spark=OnSpark(lambda: spark, 0), **kwargs
    )
    assert (
        dotted.outcomes
        == validate_frame(frame.rename(columns={"name": "a.name"}), "shape", **kwargs).outcomes
    )


def _validated_copy(settings, tmp_path, name, on_spark):
    """A copy of the demo's warehouse and GX folder after a full, compared revalidation of
    the ERP's staged customers (its quarantine, scorecard and per-row state rewritten)."""
    from dataclasses import replace
    from datetime import datetime

    from custpipe.incremental import Schedule
    from custpipe.quality.validate import plan_source, validate_source

    data = tmp_path / name
    data.mkdir()
    shutil.copy(settings.warehouse_path, data / "warehouse.duckdb")
    shutil.copytree(settings.gx_dir, data / "gx")
    copy = replace(settings, data_dir=data)
    with duckdb.connect(str(copy.warehouse_path)) as con:
        plan = plan_source(con, copy, "erp", Schedule(full_refresh=True))
        assert plan.mode == "full"
        v = validate_source(
            con, copy, "erp", "run-x", datetime(2026, 11, 28), plan=plan, spark=on_spark
        )
        tables = {
            table: con.execute(f"SELECT * EXCLUDE (validated_at) FROM {table} ORDER BY ALL").df()
            for table in ("quality.validated_rows",)
        }
        tables["quarantine"] = con.execute(
            f"SELECT source_system, source_id, rule FROM ({CURRENT_QUARANTINE}) ORDER BY ALL"
        ).df()
    return v, tables


def test_a_staged_source_validated_on_spark_quarantines_the_same_rows(spark, demo_run, tmp_path):
    """validate_source with OnSpark (what engine: spark's quality step passes): the full,
    compared revalidation gives the pandas run's outcome, quarantine and per-row state."""
    settings = demo_run[0].settings
    on_pandas, pandas_tables = _validated_copy(settings, tmp_path, "pandas", None)
    on_spark, spark_tables = _validated_copy(settings, tmp_path, "spark", OnSpark(lambda: spark, 0))
    assert on_spark.outcome.outcomes == on_pandas.outcome.outcomes
    custom = {
        "expect_column_values_to_be_valid_e164",
        "expect_column_values_to_have_valid_tax_id",
        "expect_company_tax_id_where_required",
        "expect_row_values_to_fit_published_columns",
        "expect_column_values_to_not_be_formula_payloads",
    }
    assert custom <= {o.expectation_type for o in on_pandas.outcome.outcomes}
    assert sum(o.failed > 0 for o in on_pandas.outcome.outcomes) >= 4  # failing rows compared
    assert on_spark.quarantined == on_pandas.quarantined > 0
    assert on_spark.differences == on_pandas.differences
    for table, frame in pandas_tables.items():
        pd.testing.assert_frame_equal(spark_tables[table], frame, check_exact=True)


def test_a_column_spark_cannot_hold_is_named(spark, tmp_path):
    """Mixed value types in one column: a clear error naming the suite, the column and the
    way out, not Arrow's."""
    from custpipe.quality.gx_runner import GxRunnerError

    frame = pd.DataFrame({"source_id": ["1", "2"], "name": ["a", 3]})
    kwargs = {"expectations_dir": tmp_path / "exp", "gx_dir": tmp_path / "gx", "build_docs": False}
    (tmp_path / "exp").mkdir()
    suite = {
        "name": "names",
        "id": "3f1c2b4a-5d6e-4f70-8192-a3b4c5d6e7f8",
        "meta": {},
        "notes": None,
        "expectations": [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "name"},
                "meta": {"rule": "name_present", "severity": "block"},
                "id": "6a7b8c9d-0e1f-4a2b-9c3d-4e5f6a7b8c9d",
            }
        ],
    }
    (tmp_path / "exp" / "names.json").write_text(json.dumps(suite))
    with pytest.raises(GxRunnerError, match="column 'name' holds values of more than one type"):
        validate_frame(frame, "names", spark=OnSpark(lambda: spark, 0), **kwargs)
    assert validate_frame(frame, "names", **kwargs).success  # pandas takes it as it is

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

from custpipe.config import load_config
from custpipe.quality import incremental as inc
from custpipe.quality.gx_runner import columns_named, load_suite_names, read_suite, validate_frame
from custpipe.quality.validate import GOLDEN_TARGET, read_landing_columns, suite_for
from custpipe.sources.extract import latest_landing

#: the ERP's suites carry every kind of rule (custpipe's own types, with failing rows in the
#: demo); the other sources' suites differ only in their column names (GX on Spark takes
#: 5-10 s a suite on local[2], so the test keeps to these)
SOURCES = ("erp",)


def _frames(settings):
    """(suite, frame, id column) for the suites of SOURCES, the orders and the golden
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
            target = inc.customers_target(source)
            suite = suite_for(source, settings.expectations_dir)
            suite_dict = read_suite(settings.expectations_dir, suite)
            columns = inc.suite_frame_columns(con, target, suite_dict)
            yield suite, inc.fetch_all(con, target, columns), target.id_column
        for target, suite in ((inc.orders_target(), "orders"), (GOLDEN_TARGET, "golden_customers")):
            suite_dict = read_suite(settings.expectations_dir, suite)
            columns = inc.suite_frame_columns(con, target, suite_dict)
            yield suite, inc.fetch_all(con, target, columns), target.id_column


def test_every_suite_gives_the_same_outcome_on_spark_as_on_pandas(spark, demo_run, tmp_path):
    settings = demo_run[0].settings
    gx_dir = tmp_path / "gx"
    shutil.copytree(settings.gx_dir, gx_dir)
    seen, failing = set(), 0
    for suite, frame, id_column in _frames(settings):
        kwargs = {
            "expectations_dir": settings.expectations_dir,
            "gx_dir": gx_dir,
            "id_column": id_column,
            "build_docs": False,
        }
        on_pandas = validate_frame(frame, suite, **kwargs)
        on_spark = validate_frame(frame, suite, spark=spark, **kwargs)
        assert on_spark.success == on_pandas.success, suite
        assert on_spark.outcomes == on_pandas.outcomes, suite
        seen |= {o.expectation_type for o in on_pandas.outcomes}
        failing += sum(o.failed > 0 for o in on_pandas.outcomes)
    custom = {
        "expect_column_values_to_be_valid_e164",
        "expect_column_values_to_have_valid_tax_id",
        "expect_company_tax_id_where_required",
        "expect_row_values_to_fit_published_columns",
        "expect_column_values_to_not_be_formula_payloads",
    }
    assert custom <= seen  # each of custpipe's own types ran on both engines
    assert failing >= 4  # and rules with failing rows, not only clean ones, were compared


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
    on_spark = validate_frame(frame, "shape", spark=spark, **kwargs)
    assert not on_pandas.success and on_spark.outcomes == on_pandas.outcomes
    dotted = validate_frame(
        frame.rename(columns={"name": "a.name"}), "shape", spark=spark, **kwargs
    )
    assert (
        dotted.outcomes
        == validate_frame(frame.rename(columns={"name": "a.name"}), "shape", **kwargs).outcomes
    )

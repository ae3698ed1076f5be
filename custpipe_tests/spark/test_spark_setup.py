"""The Spark engine's set-up and settings, without a Spark session: configuration, the
session's settings, the model's settings written for Spark."""

from __future__ import annotations

import json

import pytest

from custpipe.config import SparkConfig, load_config
from custpipe.matching.model import MatchModel
from custpipe.matching.pairs import restricted_rules
from custpipe.matching.settings import splink_settings
from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe.spark.scoring import spark_settings
from custpipe.spark.session import MASTER_ENV, describe, settings_for
from custpipe_tests.conftest import edit
from custpipe_tests.spark.conftest import require_spark


def test_the_demo_runs_on_duckdb_unless_told(tmp_path):
    cfg = load_config(DEFAULT_CONFIG_DIR)
    assert cfg.engine == "duckdb"
    assert cfg.spark.master == "local[2]"


def test_an_unknown_engine_or_a_non_spark_setting_is_named(config_dir):
    pipeline = config_dir / "pipeline.yaml"
    edit(pipeline, "engine: duckdb ", "engine: flink ")
    with pytest.raises(ValueError, match="engine"):
        load_config(config_dir)
    edit(pipeline, "engine: flink ", "engine: spark ")
    edit(pipeline, "conf: {}", "conf: {driver.memory: 4g}")
    with pytest.raises(ValueError, match=r"driver\.memory: not Spark settings"):
        load_config(config_dir)


def test_the_session_settings(tmp_path, monkeypatch):
    require_spark()  # Splink's jar location comes with its Spark backend, which needs pyspark
    from splink.backends.spark import similarity_jar_location

    monkeypatch.delenv(MASTER_ENV, raising=False)
    cfg = SparkConfig(conf={"spark.sql.shuffle.partitions": "64"})
    conf = settings_for(cfg, tmp_path)
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.jars"] == similarity_jar_location()
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.shuffle.partitions"] == "64"  # the deployment's word is last
    assert conf["spark.local.dir"].startswith(str(tmp_path))
    monkeypatch.setenv(MASTER_ENV, "spark://cluster:7077")
    assert settings_for(cfg, tmp_path)["spark.master"] == "spark://cluster:7077"
    assert describe(cfg) == "spark (master spark://cluster:7077)"


def _model() -> MatchModel:
    return MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")


def test_the_models_comparisons_are_written_for_spark_with_its_trained_values():
    model = _model()
    cfg = load_config(DEFAULT_CONFIG_DIR)
    settings = spark_settings(model.splink, splink_settings(cfg.match_settings(), "spark"))
    assert settings["sql_dialect"] == "spark"
    text = json.dumps(settings)
    assert "jaro_winkler_similarity" not in text and "jaro_winkler(" in text
    for ours, theirs in zip(settings["comparisons"], model.splink["comparisons"], strict=True):
        assert ours["output_column_name"] == theirs["output_column_name"]
        for a, b in zip(ours["comparison_levels"], theirs["comparison_levels"], strict=True):
            assert a.get("m_probability") == b.get("m_probability")
            assert a.get("u_probability") == b.get("u_probability")
            assert a["label_for_charts"] == b["label_for_charts"]
    prior = "probability_two_random_records_match"
    assert settings[prior] == model.splink[prior]
    restricted = restricted_rules(settings, True)
    for rule in restricted["blocking_rules_to_generate_predictions"]:
        assert rule["sql_dialect"] == "spark"
        assert rule["blocking_rule"].endswith("AND (l.changed OR r.changed)")


def test_a_model_of_other_levels_or_with_term_frequencies_is_refused():
    model = _model()
    configured = splink_settings(load_config(DEFAULT_CONFIG_DIR).match_settings(), "spark")
    other = json.loads(json.dumps(model.splink))
    other["comparisons"][0]["comparison_levels"].pop(1)
    with pytest.raises(ValueError, match="retrain the model"):
        spark_settings(other, configured)
    tf = json.loads(json.dumps(model.splink))
    tf["comparisons"][0]["comparison_levels"][1]["tf_adjustment_column"] = "name_key"
    with pytest.raises(ValueError, match="term-frequency adjustments"):
        spark_settings(tf, configured)
    gone = json.loads(json.dumps(model.splink))
    gone["comparisons"][0]["output_column_name"] = "shoe_size"
    with pytest.raises(ValueError, match="shoe_size"):
        spark_settings(gone, configured)


def test_tonights_engine_is_the_run_option_else_the_configuration(config_dir, tmp_path):
    import dagster as dg

    from custpipe.defs.resources import CustpipeResource, RunOptions, engine_of
    from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings

    settings = Settings(config_dir, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    resource = CustpipeResource.from_settings(settings)  # outside a run: config/ itself
    assert engine_of(resource, RunOptions()) == "duckdb"
    assert engine_of(resource, RunOptions(engine="spark")) == "spark"
    edit(config_dir / "pipeline.yaml", "engine: duckdb ", "engine: spark ")
    resource = CustpipeResource.from_settings(settings)
    assert engine_of(resource, RunOptions()) == "spark"
    assert engine_of(resource, RunOptions(engine="duckdb")) == "duckdb"
    with pytest.raises(dg.Failure, match="write duckdb or spark"):
        engine_of(resource, RunOptions(engine="Spark "))


def test_gx_runs_on_spark_only_when_asked(config_dir, tmp_path):
    """engine: spark validates on pandas unless spark.validate_min_rows is set (and the work
    runs in the session); then frames of that many rows go to Spark."""
    require_spark()
    from custpipe.defs.resources import CustpipeResource, RunOptions, gx_engine, gx_on_spark
    from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings

    settings = Settings(config_dir, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    spark = RunOptions(engine="spark")
    assert gx_on_spark(CustpipeResource.from_settings(settings), spark) is None
    edit(config_dir / "pipeline.yaml", "validate_min_rows: null ", "validate_min_rows: 500000 ")
    resource = CustpipeResource.from_settings(settings)
    assert gx_on_spark(resource, RunOptions()) is None  # engine: duckdb
    on_spark = gx_on_spark(resource, spark)
    assert on_spark.min_rows == 500_000 and on_spark.session_for(499_999) is None
    assert gx_engine(on_spark) == "spark for frames of 500,000 rows or more, pandas below"
    assert gx_engine(None) == "pandas"
    edit(config_dir / "pipeline.yaml", "launch: session ", "launch: submit ")
    assert gx_on_spark(CustpipeResource.from_settings(settings), spark) is None


def test_a_spark_night_that_cannot_run_here_fails_at_once_naming_the_fix(
    config_dir, tmp_path, monkeypatch
):
    import dagster as dg

    from custpipe.defs.resources import CustpipeResource, RunOptions, engine_of
    from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings
    from custpipe.spark import session

    resource = CustpipeResource.from_settings(
        Settings(config_dir, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    )
    monkeypatch.setattr(session, "spark_problem", lambda: "pyspark is not installed: x")
    with pytest.raises(dg.Failure, match="pyspark is not installed.*make spark") as failed:
        engine_of(resource, RunOptions(engine="spark"))
    assert failed.value.allow_retries is False
    assert engine_of(resource, RunOptions()) == "duckdb"  # the DuckDB engine is unaffected


@pytest.mark.parametrize(
    ("printed", "verdict"),
    [
        ('openjdk version "17.0.15" 2025-04-15', None),
        ('openjdk version "21.0.2" 2024-01-16', None),
        ('java version "1.8.0_392"', "is Java 8; Spark 4 needs 17+"),
        ('openjdk version "11.0.22" 2024-01-16', "is Java 11; Spark 4 needs 17+"),
        ("nothing useful", "printed no version"),
    ],
)
def test_the_java_version_is_read_from_java_home(tmp_path, monkeypatch, printed, verdict):
    from custpipe.spark.session import java_problem

    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text(f"#!/bin/sh\necho '{printed}' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    problem = java_problem()
    assert problem is None if verdict is None else verdict in problem

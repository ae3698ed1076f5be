"""spark.launch: submit — custpipe's Spark work as spark-submit jobs launched through Dagster
Pipes (custpipe.spark.runners.Submitted, custpipe.spark.job), against local mode: the same
staged rows and scored pairs as the run's own session, the job's figures in the step's event
log, and a failed job named in the step's failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from custpipe.config import SparkConfig, load_config
from custpipe.spark.exchange import Exchange
from custpipe.spark.runners import InSession, Submitted, runner, submit_command
from custpipe_tests.spark.conftest import require_spark

THRESHOLD = 0.8


def _work(deployment, tmp_path):
    """A demo night's Spark work: the CRM landing's batches to map, and the match input of
    1,000 of the warehouse's records with the model's settings (DuckDB's and written for
    Spark), from the shared demo run."""
    from custpipe.mapping.stage import DATASETS, _changed_batches
    from custpipe.matching.consolidate import load_matcher
    from custpipe.matching.model import match_input
    from custpipe.matching.settings import derived_in_rules
    from custpipe.matching.workspace import match_workspace
    from custpipe.sources.extract import latest_landing, read_landing_table
    from custpipe.spark.scoring import SparkScoring

    settings = deployment.settings
    cfg = load_config(settings.config_dir)
    landing = read_landing_table(latest_landing(settings, "crm", "customers"))
    stager = {name: fn for name, fn, _ in DATASETS}["customers"]
    batches = list(_changed_batches(landing, 100, np.ones(landing.num_rows, dtype=bool)))
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(settings.warehouse_path, warehouse)
    model = load_matcher(
        settings.expand(cfg.matching.model), 0.99, THRESHOLD, cfg.match_settings()
    ).model
    with duckdb.connect(str(warehouse)) as con:
        trust = {name: s.trust for name, s in cfg.sources.items()}
        with match_workspace(con, trust) as ws:
            frame = match_input(ws, derived_in_rules(model.splink)).slice(0, 1000)
    trained = model.settings_for(0)
    spark = SparkScoring(cfg.match_settings(), InSession(SparkConfig(), tmp_path))
    return cfg.sources["crm"], stager, batches, frame, trained, spark.settings_for(trained)


def _duckdb_levels(frame: pa.Table, trained: dict) -> pd.DataFrame:
    """The pairs and levels the DuckDB engine finds in `frame`."""
    from custpipe.matching.model import _splink_linker

    scored = _splink_linker(frame, trained).inference.predict(
        threshold_match_probability=THRESHOLD, warning_mode="never"
    )
    gammas = [f"gamma_{c['output_column_name']}" for c in trained["comparisons"]]
    return scored.as_pandas_dataframe()[["unique_id_l", "unique_id_r", *gammas]]


def _same_staged(got, want) -> None:
    assert type(got) is type(want)
    if isinstance(want, pa.Table):
        assert got.equals(want)
    else:
        pd.testing.assert_frame_equal(got, want, check_exact=True)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype("int64")
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _duckdb_consolidation(folder: Path) -> tuple[dict, dict]:
    """Hand-made clustering and survivorship inputs (custpipe_tests/spark/
    test_spark_consolidation), as Parquet files in `folder`, with DuckDB's labels and golden
    records of them."""
    from custpipe.matching.linking import connected_components
    from custpipe.matching.survivorship import Survivorship, survivorship_sql
    from custpipe.matching.workspace import MatchWorkspace
    from custpipe_tests.spark.test_spark_consolidation import SOURCES, _graph, _records

    nodes, edges = _graph(seed=5)
    records, labels = _records(seed=11, clusters=20)
    trust = pd.DataFrame({"source_system": list(SOURCES), "trust": list(SOURCES.values())})
    rules = Survivorship(default=("recent", "complete", "frequent"))
    sql = survivorship_sql(rules, nodes="records")
    with duckdb.connect() as con:
        frames = {"graph_nodes": nodes, "graph_edges": edges, "records": records}
        for name, frame in (frames | {"labels": labels, "trust": trust}).items():
            con.register(name, frame)
        ws = MatchWorkspace(con, records=len(nodes), labels="graph_labels")  # not `labels`
        con.execute(f"CREATE TEMP TABLE {ws.nodes} AS SELECT node::BIGINT node FROM graph_nodes")
        con.execute(
            f"CREATE TEMP TABLE {ws.edges} AS SELECT a::BIGINT a, b::BIGINT b FROM graph_edges"
        )
        connected_components(ws)
        want = {
            "labels": con.execute(f"SELECT * FROM {ws.labels} ORDER BY node").df(),
            "golden": con.execute(f"{sql} ORDER BY label", {"erp_source": "erp"}).df(),
        }

        def parquet(name: str, select: str) -> Path:  # as the warehouse writes them
            return Exchange(folder).put(con, name, select)

        work = {
            "graph": (
                parquet("nodes", "FROM graph_nodes"),
                # the links connected_components hands a runner: between two of the nodes
                parquet(
                    "links",
                    "FROM graph_edges WHERE a <> b AND a IN (FROM graph_nodes) "
                    "AND b IN (FROM graph_nodes)",
                ),
            ),
            "survivorship": (
                sql,
                {n: parquet(n, f"FROM {n}") for n in ("records", "labels", "trust")},
            ),
        }
    return work, want


def test_submitted_work_is_the_engines_and_reports_through_pipes(demo_run, tmp_path):
    """Every kind of Spark work through spark-submit: the staged rows are the stager's own,
    the pairs and levels, the cluster labels and the golden records DuckDB's
    (custpipe_tests/spark/test_spark_scoring and test_spark_consolidation hold the session
    to the same)."""
    from custpipe.defs.resources import pipes_launch

    require_spark()
    source, stager, batches, frame, trained, settings = _work(demo_run[0], tmp_path)
    exchanged = tmp_path / "exchanged"
    exchanged.mkdir()
    work, want_consolidation = _duckdb_consolidation(exchanged)
    assert len(batches) > 1 and frame.num_rows > 500
    work_dir = tmp_path / "spark"
    cfg = SparkConfig(conf={"spark.sql.shuffle.partitions": "2"}, launch="submit")
    done = {}

    @dg.asset
    def spark_work(context):
        submitted = Submitted(cfg, work_dir, pipes_launch(context))
        match_input = Exchange(exchanged).put_arrow("match_input", frame)
        submitted.score(match_input, settings, THRESHOLD, exchanged / "pairs")
        done["mapped"] = list(submitted.map_batches(stager, iter(batches), source, True))
        done["iterations"] = submitted.components(*work["graph"], exchanged / "labels")
        sql, tables = work["survivorship"]
        submitted.query(sql, tables, exchanged / "golden", {"erp_source": "erp"})
        return dg.MaterializeResult()

    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([spark_work], instance=instance).success
    want = _duckdb_levels(frame, trained)
    assert len(want) > 10
    pairs = pq.read_table(exchanged / "pairs").to_pandas()  # the parts the executors wrote
    pd.testing.assert_frame_equal(_sorted(pairs), _sorted(want))
    assert len(done["mapped"]) == len(batches)
    for (start, mask, staged, issues, _), (want_start, want_mask, raw) in zip(
        done["mapped"], batches, strict=True
    ):
        assert start == want_start and np.array_equal(mask, want_mask)
        want_staged, want_issues = stager(raw, source, arrow=True)
        _same_staged(staged, want_staged)
        assert issues == want_issues
    assert done["iterations"] >= 2
    got = pq.read_table(exchanged / "labels").to_pandas().sort_values("node")  # the parts
    pd.testing.assert_frame_equal(
        got.reset_index(drop=True), want_consolidation["labels"], check_dtype=False
    )
    golden = pq.read_table(exchanged / "golden").to_pandas().sort_values("label")
    golden = golden.reset_index(drop=True)
    pd.testing.assert_frame_equal(golden, want_consolidation["golden"], check_dtype=False)
    assert len(golden) == 20
    logs = [e.user_message for e in instance.all_logs(next(iter(instance.get_run_ids())))]
    assert any(f"custpipe Spark score: {len(want):,} rows" in m for m in logs)
    assert any("custpipe Spark stage:" in m and "local[2]" in m for m in logs)
    assert any("custpipe Spark components: 1,500 rows" in m for m in logs)
    assert any("custpipe Spark query: 20 rows" in m for m in logs)
    assert not list((work_dir / "requests").iterdir())  # the request folders are removed


def test_a_failed_job_fails_the_step_naming_the_task(tmp_path, monkeypatch):
    from custpipe.defs.resources import pipes_launch

    monkeypatch.setenv("CUSTPIPE_SPARK_SUBMIT", shutil.which("false"))

    @dg.asset
    def spark_work(context):
        submitted = Submitted(SparkConfig(), tmp_path, pipes_launch(context))
        with submitted.exchange() as work:
            frame = work.put_arrow("match_input", pa.table({"unique_id": [1]}))
            submitted.score(frame, {}, THRESHOLD, work.result)

    result = dg.materialize([spark_work], raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error
    text = failure.message + "".join(c.message for c in [failure.cause] if c)
    assert "spark-submit of custpipe's score job failed" in text
    assert not list((tmp_path / "tables").iterdir())  # the work's folder is removed


def test_the_submit_command_carries_the_sessions_settings(tmp_path, monkeypatch):
    require_spark()
    monkeypatch.delenv("CUSTPIPE_SPARK_SUBMIT", raising=False)
    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.setenv("CUSTPIPE_SPARK_MASTER", "spark://cluster:7077")
    cfg = SparkConfig(conf={"spark.executor.memory": "8g"}, launch="submit")
    command = submit_command(cfg, tmp_path)
    assert command[0].endswith("pyspark/bin/spark-submit")
    assert command[1:3] == ["--master", "spark://cluster:7077"]
    confs = dict(c.split("=", 1) for c in command[4:-1:2])
    assert confs["spark.executor.memory"] == "8g"
    assert confs["spark.jars"].endswith(".jar")
    assert confs["spark.local.dir"] == str(tmp_path / "local")
    assert command[-1].endswith("custpipe/spark/job.py")
    monkeypatch.setenv("SPARK_HOME", "/opt/spark")
    assert submit_command(cfg, tmp_path)[0] == "/opt/spark/bin/spark-submit"
    assert isinstance(runner(cfg, tmp_path, lambda c, e: []), Submitted)
    with pytest.raises(ValueError, match="needs a launcher"):
        runner(cfg, tmp_path, None)
    assert isinstance(runner(SparkConfig(), tmp_path, None), InSession)
    with pytest.raises(ValueError, match="launch"):
        SparkConfig(launch="yarn")
    # the tables go where spark.tables says (default <work_dir>/tables), a folder per work
    for launch, tables, where in [
        ("session", None, tmp_path / "tables"),
        ("submit", tmp_path / "shared", tmp_path / "shared"),
    ]:
        chosen = runner(SparkConfig(launch=launch), tmp_path, lambda c, e: [], tables)
        with chosen.exchange() as first, chosen.exchange() as second:
            assert first.folder.parent == second.folder.parent == where
            assert first.folder != second.folder and first.result.parent == first.folder
        assert not list(where.iterdir())
    assert SparkConfig().tables == "{data}/spark/tables"

"""Retention: old delta files, quarantine, scorecard, golden-ID history and landing folders
are removed after their configured days; landing folders staging still needs never are."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import duckdb
import pandas as pd
import pytest

from custpipe.config import ConfigError, RetentionConfig, load_config
from custpipe.retention import apply_retention, needed_landings
from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR, Settings
from custpipe.warehouse import DDL, append_rows

NOW = datetime(2026, 6, 1, 2, 0)


def _landing(settings, day, source, stamp, mode, rejected=False, dataset="customers"):
    folder = settings.landing_dir / day / source / stamp / dataset
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"mode": mode, "rows": 1}))
    (folder / "part-00000.parquet").write_bytes(b"x")
    if rejected:
        (folder / "rejected.json").write_text("{}")
    return folder


def _publish_folder(publish, run, published_at, mtime=None):
    """A delta folder as export_delta writes it, published at `published_at`; its files'
    modification time `mtime` (default: now, as after a restore or copy)."""
    from custpipe.publish.erp import export_delta

    delta = pd.DataFrame({"change": ["insert"], "golden_id": ["G1"]})
    paths = export_delta(delta, publish, run, published_at=published_at)
    if mtime is not None:
        for path in paths:
            os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return publish / run


@pytest.fixture
def world(tmp_path):
    settings = Settings(
        config_dir=DEFAULT_CONFIG_DIR,
        data_dir=tmp_path / "data",
        expectations_dir=DEFAULT_EXPECTATIONS_DIR,
    )
    con = duckdb.connect()
    con.execute(DDL)
    f = {
        "erp1": _landing(settings, "2026-01-01", "erp", "20260102T010000Z", "full"),
        "erp2": _landing(settings, "2026-01-02", "erp", "20260103T010000Z", "incremental"),
        "erp3": _landing(settings, "2026-01-03", "erp", "20260104T010000Z", "full"),
        "erp4": _landing(settings, "2026-01-04", "erp", "20260105T010000Z", "incremental"),
        "erp5": _landing(settings, "2026-01-05", "erp", "20260106T010000Z", "incremental"),
        "crm1": _landing(settings, "2026-01-01", "crm", "20260102T010000Z", "full", True),
        "crm2": _landing(settings, "2026-01-02", "crm", "20260103T010000Z", "full"),
        "crm3": _landing(settings, "2026-01-03", "crm", "20260104T010000Z", "full", True),
        "sal1": _landing(settings, "2026-05-30", "sales", "20260531T010000Z", "full"),
    }
    staged = ["erp1", "erp2", "erp3", "erp4", "crm2", "sal1"]  # erp5 is not staged yet
    append_rows(
        con,
        "staging.landing_log",
        pd.DataFrame(
            [
                {
                    "source_system": f[k].parts[-3],
                    "dataset": "customers",
                    "landing_path": str(f[k]),
                }
                for k in staged
            ]
        ),
    )
    append_rows(
        con,
        "staging.customers",
        pd.DataFrame(
            {"source_system": ["erp"], "source_id": ["1"], "landing_path": [str(f["erp3"])]}
        ),
    )
    for table, column, extra in (
        ("quality.quarantine", "quarantined_at", {"rule": "r", "run_id": "x"}),
        ("quality.scorecard", "run_at", {"rule": "r", "run_id": "x"}),
        ("mdm.golden_id_history", "recorded_at", {}),
    ):
        rows = [
            {"source_system": "erp", column: NOW - timedelta(days=d)} | extra for d in (800, 400, 1)
        ]
        frame = pd.DataFrame(rows)
        if table == "mdm.golden_id_history":
            frame = frame.drop(columns="source_system").assign(golden_id="G")
        append_rows(con, table, frame)
    publish = settings.data_dir / "publish"
    for run, age in (("old-run", 100), ("new-run", 10)):
        _publish_folder(publish, run, NOW - timedelta(days=age))
    yield settings, con, f
    con.close()


def test_old_data_is_removed_and_what_staging_needs_is_kept(world):
    settings, con, f = world
    result = apply_retention(con, settings, RetentionConfig(), NOW)
    assert result.removed == {
        "quarantine": 2,  # 800 and 400 days old (keeps 365)
        "scorecard": 1,  # 800 days old (keeps 730)
        "golden_id_history": 1,
        "publish_files": 1,
        "landing": 3,
    }
    assert not (settings.data_dir / "publish" / "old-run").exists()
    assert (settings.data_dir / "publish" / "new-run" / "delta.csv").exists()
    gone = {k for k, p in f.items() if not p.exists()}
    # erp1, erp2: before the last full extraction staged; crm1: rejected and not the newest
    assert gone == {"erp1", "erp2", "crm1"}
    # erp3 (last full staged), erp4 (since it), erp5 (not staged yet, newest), crm2 (last
    # accepted), crm3 (newest), sal1 (young) are kept
    assert result.kept_landing_needed == 5
    assert not (settings.landing_dir / "2026-01-01" / "erp").exists()  # empty parents go
    assert (con.execute("SELECT count(*) FROM quality.quarantine").fetchone()[0]) == 1
    again = apply_retention(con, settings, RetentionConfig(), NOW)
    assert set(again.removed.values()) == {0}


def test_null_or_zero_keeps_everything_forever(world):
    settings, con, f = world
    forever = RetentionConfig(
        publish_files=None, quarantine=0, scorecard=None, golden_id_history=0, landing=None
    )
    result = apply_retention(con, settings, forever, NOW)
    assert set(result.removed.values()) == {0}
    assert all(p.exists() for p in f.values())


def test_a_restage_after_a_mapping_change_still_finds_its_folders(world):
    settings, con, f = world
    needed = needed_landings(con, settings)
    assert {f["erp3"], f["erp4"], f["erp5"]} <= needed and f["erp2"] not in needed


def test_retention_settings_are_validated(tmp_path):
    import shutil

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    pipeline = config / "pipeline.yaml"
    pipeline.write_text(
        pipeline.read_text(encoding="utf-8").replace("  landing: 90 ", "  landing: -5 "),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"retention\.landing"):
        load_config(config)
    assert load_config(DEFAULT_CONFIG_DIR).retention.landing == 90


def test_the_retention_asset_reports_what_it_removed(tmp_path):
    import dagster as dg

    from custpipe.defs.quality import build_retention_asset
    from custpipe.defs.resources import CustpipeResource

    settings = Settings(
        config_dir=DEFAULT_CONFIG_DIR,
        data_dir=tmp_path / "data",
        expectations_dir=DEFAULT_EXPECTATIONS_DIR,
    )
    old = _publish_folder(
        settings.data_dir / "publish", "old-run", datetime.now() - timedelta(days=400)
    )
    asset = build_retention_asset(load_config(DEFAULT_CONFIG_DIR))
    result = dg.materialize(
        [asset], resources={"custpipe": CustpipeResource.from_settings(settings)}
    )
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["removed_publish_files"].value == 1 and not old.exists()
    assert metadata["removed_landing"].value == 0


def test_publish_folders_are_aged_by_their_publish_time_not_the_file_times(tmp_path):
    """A restore or copy resets modification times: the age is the publish time export_delta
    recorded, so a restored old folder goes and a fresh one with old file times stays."""
    from custpipe.retention import prune_publish_files

    publish = tmp_path / "publish"
    restored = _publish_folder(publish, "restored", NOW - timedelta(days=100), mtime=NOW)
    fresh = _publish_folder(publish, "fresh", NOW - timedelta(days=10), NOW - timedelta(days=300))
    assert prune_publish_files(publish, 90, NOW) == 1
    assert not restored.exists() and (fresh / "delta.csv").exists()


def test_an_undated_publish_folder_is_dated_when_first_seen_and_goes_that_many_days_later(
    tmp_path,
):
    from custpipe.retention import prune_publish_files

    legacy = tmp_path / "publish" / "legacy-run"
    legacy.mkdir(parents=True)
    (legacy / "delta.csv").write_text("x")
    old = (NOW - timedelta(days=400)).timestamp()
    os.utime(legacy / "delta.csv", (old, old))  # file times say nothing
    assert prune_publish_files(tmp_path / "publish", 90, NOW) == 0
    assert prune_publish_files(tmp_path / "publish", 90, NOW + timedelta(days=89)) == 0
    assert prune_publish_files(tmp_path / "publish", 90, NOW + timedelta(days=91)) == 1
    assert not legacy.exists()


def test_the_quarantine_of_a_sources_latest_validation_is_never_removed(tmp_path):
    """Consolidation holds back the records in each source's latest quarantine: deleting
    those rows (however old) would let the held-back records through."""
    from custpipe.retention import prune_tables

    con = duckdb.connect()
    con.execute(DDL)
    runs = [("crm", "crm-old", 500), ("crm", "crm-last", 400), ("erp", "erp-last", 1)]
    append_rows(
        con,
        "quality.validation_runs",
        pd.DataFrame(
            [
                {"source_system": s, "run_id": r, "validated_at": NOW - timedelta(days=d)}
                for s, r, d in runs
            ]
        ),
    )
    append_rows(
        con,
        "quality.quarantine",
        pd.DataFrame(
            [
                {
                    "source_system": s,
                    "source_id": "1",
                    "rule": "r",
                    "run_id": r,
                    "quarantined_at": NOW - timedelta(days=d),
                }
                for s, r, d in [*runs, ("erp", "erp-old", 800)]
            ]
        ),
    )
    removed = prune_tables(con, RetentionConfig(), NOW)
    assert removed["quarantine"] == 2  # crm-old and erp-old; crm-last is crm's latest
    kept = con.execute("SELECT run_id FROM quality.quarantine ORDER BY run_id").fetchall()
    assert kept == [("crm-last",), ("erp-last",)]
    con.close()

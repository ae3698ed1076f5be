"""The definitions load, and their shape is a snapshot: a rename cannot slip through."""

import dagster as dg

from custpipe.definitions import build_definitions, defs
from custpipe.settings import Settings

SOURCES = ["crm", "erp", "sales", "service"]
EXPECTED_ASSETS = sorted(
    [f"extract/{s}" for s in SOURCES]
    + [f"staging/{s}" for s in SOURCES]
    + [f"quality/{s}" for s in SOURCES]
    + [
        "mdm/golden_customers",
        "mdm/customer_xref",
        "mdm/match_review",
        "recon/order_discrepancies",
        "publish/erp_customers",
        "quality/scorecard",
        "quality/retention",
    ]
)
EXPECTED_CHECKS = sorted(
    [f"extract/{s}:raw_shape" for s in SOURCES]
    + [f"staging/{s}:source_held" for s in SOURCES]
    + [f"quality/{s}:suite_passes" for s in SOURCES]
    + [f"quality/{s}:rows_quarantined" for s in SOURCES]
    + [f"quality/{s}:volume_stable" for s in SOURCES]
    + [f"staging/{s}:mapping_issues" for s in SOURCES]
    + [
        "mdm/customer_xref:conservation",
        "mdm/golden_customers:golden_suite_passes",
        "mdm/golden_customers:incremental_consistent",
        "mdm/match_review:review_queue_growth",
        "recon/order_discrepancies:no_discrepancies",
        "recon/order_discrepancies:orders_suite_passes",
        "publish/erp_customers:erp_matches_golden",
    ]
)


def _graph():
    return defs.resolve_asset_graph()


def test_module_level_definitions_load():
    assert isinstance(defs, dg.Definitions)
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_snapshot():
    keys = sorted(k.to_user_string() for k in _graph().get_all_asset_keys())
    assert keys == EXPECTED_ASSETS


def test_asset_checks_snapshot_and_blocking():
    graph = _graph()
    checks = {f"{k.asset_key.to_user_string()}:{k.name}": k for k in graph.asset_check_keys}
    assert sorted(checks) == EXPECTED_CHECKS
    blocking = sorted(name for name, key in checks.items() if graph.get_check_spec(key).blocking)
    assert blocking == sorted(
        [f"extract/{s}:raw_shape" for s in SOURCES]
        + [f"quality/{s}:suite_passes" for s in SOURCES]
        + [f"quality/{s}:volume_stable" for s in SOURCES]
        + ["mdm/customer_xref:conservation", "mdm/golden_customers:golden_suite_passes"]
        + ["publish/erp_customers:erp_matches_golden"]
    )


def test_groups_and_dependencies():
    graph = _graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    for key, group in groups.items():  # each group is named like its assets' prefix
        assert group == key.split("/")[0], key
    publish_parents = {
        k.to_user_string() for k in graph.get(dg.AssetKey(["publish", "erp_customers"])).parent_keys
    }
    assert publish_parents == {"mdm/golden_customers", "mdm/customer_xref"}
    assert graph.get(dg.AssetKey(["extract", "erp"])).partitions_def is not None
    assert graph.get(dg.AssetKey(["mdm", "golden_customers"])).partitions_def is None


def test_warehouse_writers_share_one_pool():
    graph = _graph()
    for key in graph.get_all_asset_keys():
        name = key.to_user_string()
        if name.startswith(("staging/", "quality/", "mdm/", "recon/")):
            assert graph.get(key).pools == {"duckdb_warehouse"}, name


def test_nightly_job_and_schedule():
    job = defs.resolve_job_def("nightly")
    assert job.partitions_def is not None
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "nightly"


def test_definitions_follow_the_configured_sources(tmp_path):
    import shutil

    from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR

    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    shutil.copy(cfg / "sources" / "service.yaml", cfg / "sources" / "helpdesk.yaml")
    d = build_definitions(Settings(cfg, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR))
    keys = {k.to_user_string() for k in d.resolve_asset_graph().get_all_asset_keys()}
    assert {"extract/helpdesk", "staging/helpdesk", "quality/helpdesk"} <= keys


def test_dagster_cli_validates_the_workspace(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    dagster = Path(sys.executable).parent / "dagster"
    env = os.environ | {"DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_failure_alert_sensor_runs_by_default():
    sensor = defs.resolve_sensor_def("nightly_failure_alert")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def _readme_checks() -> dict[str, list[tuple[str, ...]]]:
    """The check tables of README.md's "What blocks the publish": blocking, then warning
    (check, asset, what it means, what to do, did the ERP get the night's data)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## What blocks the publish\n", 1)[1].split("\n## ", 1)[0]
    tables, current = [], None
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            current.append((cells[0].strip("`"), cells[1].strip("`"), *cells[2:]))
        elif line.startswith("|---"):
            current = []
            tables.append(current)
    assert len(tables) == 2, "README: expected a blocking and a warning table"
    return {"blocking": tables[0], "warning": tables[1]}


def test_readme_lists_every_blocking_check_of_the_definitions_and_no_other(tmp_path):
    from custpipe.gates import CHECKS
    from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR

    d = build_definitions(Settings(DEFAULT_CONFIG_DIR, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR))
    graph = d.resolve_asset_graph()
    built = {True: set(), False: set()}
    for key in graph.asset_check_keys:
        built[graph.get_check_spec(key).blocking].add((key.name, key.asset_key.to_user_string()))
    readme = _readme_checks()
    for blocking, rows in ((True, readme["blocking"]), (False, readme["warning"])):
        listed = {
            (name, asset.replace("<source>", s))
            for name, asset, *_ in rows
            for s in (SOURCES if "<source>" in asset else [""])
        }
        assert listed == built[blocking], "README.md 'What blocks the publish' is out of date"
        for name, asset, *texts in rows:  # the text is the registry's
            check = CHECKS[name]
            assert (check.blocking, check.asset) == (blocking, asset), name
            assert texts == [check.on_call, check.action, check.erp_tonight], name
    assert readme["blocking"] and readme["warning"]


def test_every_gate_result_maps_to_a_check_of_the_graph():
    from custpipe.defs.common import check_result
    from custpipe.gates import CHECKS, GateResult

    keys = set(_graph().asset_check_keys)
    for check in CHECKS.values():
        source = "crm" if check.per_source else None
        rules = [{"rule": "id_unique", "failed": 2}]
        result = GateResult(check.name, False, check.severity, "x", {"n": 1, "rules": rules})
        mapped = check_result(result, source)
        assert dg.AssetCheckKey(mapped.asset_key, mapped.check_name) in keys, check.name
        expected = dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN
        assert mapped.severity == expected and mapped.passed is False
        assert mapped.metadata["rules"].value.startswith("| rule | failed |\n")
        assert "| id_unique | 2 |" in mapped.metadata["rules"].value


def test_every_asset_has_owners_and_every_table_asset_its_name_and_schema():
    graph = _graph()
    tables = {
        "staging/erp": "staging.customers",
        "quality/erp": "quality.quarantine",
        "quality/scorecard": "quality.scorecard",
        "mdm/golden_customers": "mdm.golden_customers",
        "mdm/customer_xref": "mdm.customer_xref",
        "mdm/match_review": "mdm.match_review",
        "recon/order_discrepancies": "recon.order_discrepancies",
        "publish/erp_customers": "ZCUST_INBOUND",
    }
    for key in graph.get_all_asset_keys():
        assert graph.get(key).owners == ["team:customer-data"], key.to_user_string()
    from custpipe import catalogue

    for name, table in tables.items():
        meta = graph.get(dg.AssetKey(name.split("/"))).metadata
        assert meta["dagster/table_name"] == table, name
        declared = (
            catalogue.published_table() if table == "ZCUST_INBOUND" else catalogue.table(table)
        )
        columns = meta["dagster/column_schema"].schema.columns
        assert [(c.name, c.type) for c in columns] == [
            (c.name, c.type) for c in declared.columns
        ], name


def test_an_owner_that_is_neither_an_email_nor_a_team_names_the_fix(tmp_path):
    import shutil

    import pytest

    from custpipe.config import ConfigError, load_config
    from custpipe.settings import DEFAULT_CONFIG_DIR

    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    path = cfg / "pipeline.yaml"
    path.write_text(path.read_text() + "owners: [customer-data]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"owners: 'customer-data' is not an owner.*team:"):
        load_config(cfg)
    path.write_text(
        path.read_text().replace("[customer-data]", "[team:mdm, ann@example.com]"),
        encoding="utf-8",
    )
    assert load_config(cfg).owners == ["team:mdm", "ann@example.com"]


def test_golden_records_review_queue_and_publish_must_be_fresh_within_26_hours():
    graph = _graph()
    for name in ("mdm/golden_customers", "mdm/match_review", "publish/erp_customers"):
        policy = graph.get(dg.AssetKey(name.split("/"))).freshness_policy
        assert policy is not None, name
        assert policy.fail_window.to_timedelta().total_seconds() == 26 * 3600, name
    assert graph.get(dg.AssetKey(["mdm", "customer_xref"])).freshness_policy is None


def test_partitions_start_at_the_configured_date_or_the_environments(tmp_path):
    from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR

    configured = build_definitions(
        Settings(DEFAULT_CONFIG_DIR, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    ).resolve_job_def("nightly")
    assert configured.partitions_def.start.date().isoformat() == "2026-01-01"  # pipeline.yaml
    settings = Settings(
        DEFAULT_CONFIG_DIR,
        tmp_path / "data",
        DEFAULT_EXPECTATIONS_DIR,
        partitions_start="2026-11-20",
    )
    moved = build_definitions(settings).resolve_job_def("nightly").partitions_def
    assert moved.start.date().isoformat() == "2026-11-20"
    assert moved.get_first_partition_key() == "2026-11-20"


def _fields(config_type, path=""):
    """(path, field) of every field under a Dagster config type, depth first."""
    for name, field in getattr(config_type, "fields", {}).items():
        yield f"{path}/{name}", field
        yield from _fields(field.config_type, f"{path}/{name}")


def test_every_run_config_field_of_custpipe_has_a_description_and_no_path_is_editable():
    schema = defs.resolve_job_def("nightly").run_config_schema.config_type
    fields = dict(_fields(schema))
    options = {p: f for p, f in fields.items() if p.startswith("/resources/run_options/")}
    names = {p.rsplit("/", 1)[1] for p in options}
    assert {"dry_run", "allow_mass_retire", "full_refresh", "full_refresh_sources"} <= names
    assert {"max_quarantine_rate", "quarantine_warn_rate", "max_volume_drop"} <= names
    for path, field in options.items():
        assert field.description and field.description.strip(), f"{path} has no description"
    # everything else of custpipe's has no field at all: the paths are not run config, and
    # no asset has config of its own (one place: resources.run_options)
    assert not [p for p in fields if p.startswith("/resources/custpipe/config/")]
    assert not [p for p in fields if p.startswith("/ops/") and p.count("/") > 3]
    assert not {p.rsplit("/", 1)[1] for p in fields} & {"config_dir", "data_dir"}
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.description and "02:00" in schedule.description


def test_custpipe_run_full_refresh_is_run_config_the_job_accepts():
    import argparse

    from custpipe.cli import run_config

    job = defs.resolve_job_def("nightly")
    for full in (False, True):
        config = run_config(defs, argparse.Namespace(log_level="INFO", full_refresh=full))
        resolved = dg.validate_run_config(job, config)
        options = resolved["resources"]["run_options"]["config"]
        assert options["full_refresh"] is full and options["dry_run"] is False
        assert options["engine"] is None  # pipeline.yaml's
    args = argparse.Namespace(log_level="INFO", full_refresh=False, engine="spark")
    resolved = dg.validate_run_config(job, run_config(defs, args))
    assert resolved["resources"]["run_options"]["config"]["engine"] == "spark"

"""The Rules pages: custpipe's own offline Data Docs (core, then the pages over a real run)."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from custpipe import warehouse
from custpipe.quality.gx_runner import load_suite_names, read_suite
from custpipe.settings import DEFAULT_EXPECTATIONS_DIR
from custpipe.steward import rules

SOURCES = ["crm", "erp", "sales", "service"]
DAY = date(2026, 11, 27)
AT = datetime(2026, 11, 28, 2, 0)
CANARY = "Zyxwv Canary GmbH"


def tiny_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    return con


def add_run(con, source, run_id, rows, quarantined, success, failed: dict[str, int], day=DAY):
    """A source's validation: its run row, a scorecard row per suite rule, its business date."""
    suite_name = f"staged_customers_{source}"
    suite = read_suite(DEFAULT_EXPECTATIONS_DIR, suite_name)
    con.execute(
        "INSERT INTO quality.validation_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, source, suite_name, rows, quarantined, success, AT, True],
    )
    for exp in suite["expectations"]:
        meta = exp["meta"]
        n = failed.get(meta["rule"], 0)
        con.execute(
            "INSERT INTO quality.scorecard VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, AT, source, meta["rule"], meta["severity"], rows, n, 1 - n / rows],
        )
    for rule, n in failed.items():
        if rule.startswith("mapping:"):
            con.execute(
                "INSERT INTO quality.scorecard VALUES (?, ?, ?, ?, 'quarantine', ?, ?, ?)",
                [run_id, AT, source, rule, rows, n, 1 - n / rows],
            )
    con.execute(
        "INSERT INTO ops.stage_runs (stage, scope, run_id, business_date, mode, recorded_at) "
        "VALUES ('validate', ?, ?, ?, 'full', ?)",
        [source, run_id, day, AT],
    )


def status(con, gx_dir: Path, key: str) -> rules.SuiteStatus:
    found = rules.suite(con, DEFAULT_EXPECTATIONS_DIR, gx_dir, SOURCES, key)
    assert found is not None, key
    return found


def test_quarantine_and_warn_failures_are_not_blocked(tmp_path):
    con = tiny_warehouse()
    add_run(
        con, "erp", "r1", 100, 3, True,
        {"segment_crosswalk_covered": 3, "email_valid": 7, "name_mostly_present": 4},
    )  # fmt: skip
    erp = status(con, tmp_path, "staged_customers_erp")
    assert erp.state == "quarantined" and erp.state_text == "3 records quarantined"
    assert erp.business_date == DAY and erp.rows == 100
    by_name = {r.name: r for r in erp.rules}
    assert by_name["segment_crosswalk_covered"].state == "quarantined"
    assert by_name["email_valid"].state == "warning"
    # 4 % missing names: within the rule's mostly (0.9), so the block rule passed
    assert by_name["name_mostly_present"].state == "passed"
    assert by_name["name_mostly_present"].failed == 4
    assert "blocked" not in {r.state for r in erp.rules}

    add_run(con, "crm", "r1", 100, 0, True, {"email_valid": 2})
    assert status(con, tmp_path, "staged_customers_crm").state == "warnings"
    add_run(con, "sales", "r1", 100, 0, True, {})
    assert status(con, tmp_path, "staged_customers_sales").state == "passed"


def test_a_failed_block_rule_blocks_the_suite(tmp_path):
    con = tiny_warehouse()
    add_run(con, "crm", "r1", 100, 2, False, {"name_mostly_present": 40, "name_required": 2})
    crm = status(con, tmp_path, "staged_customers_crm")
    assert crm.state == "blocked" and crm.state_text == "blocked"
    blocked = [r.name for r in crm.rules if r.state == "blocked"]
    assert blocked == ["name_mostly_present"]
    assert next(r for r in crm.rules if r.name == "name_required").state == "quarantined"


def test_severity_description_and_columns_come_from_the_suite_file(tmp_path):
    con = tiny_warehouse()
    add_run(con, "sales", "r1", 10, 0, True, {})
    sales = status(con, tmp_path, "staged_customers_sales")
    suite = read_suite(DEFAULT_EXPECTATIONS_DIR, "staged_customers_sales")
    assert [(r.name, r.severity, r.description) for r in sales.rules] == [
        (e["meta"]["rule"], e["meta"]["severity"], e["meta"]["description"])
        for e in suite["expectations"]
    ]
    tax = next(r for r in sales.rules if r.name == "tax_id_check_digit")
    assert tax.columns == ("tax_id", "country")


def test_mapping_rules_that_held_records_are_listed_with_their_fix(tmp_path):
    con = tiny_warehouse()
    add_run(con, "service", "r1", 50, 1, True, {"mapping:required:name": 1})
    rule = next(r for r in status(con, tmp_path, "staged_customers_service").rules if r.mapping)
    assert (rule.name, rule.state, rule.failed) == ("mapping:required:name", "quarantined", 1)
    assert "fill it in the source system" in rule.description


def test_the_orders_suite_never_blocks_nor_holds_back(tmp_path):
    con = tiny_warehouse()
    for rule, severity in (("order_number_required", "block"), ("status_known", "quarantine")):
        con.execute(
            "INSERT INTO quality.scorecard VALUES ('r1', ?, 'orders', ?, ?, 20, 2, 0.9)",
            [AT, rule, severity],
        )
    orders = status(con, tmp_path, "orders")
    states = {r.name: r.state for r in orders.rules}
    assert states == {
        "order_number_required": "failed",
        "status_known": "failed",
        "amount_non_negative": "not run",
    }
    assert orders.state == "warnings"


def gx_result(gx_dir: Path, suite: str, stamp: str, results: list[dict]) -> None:
    folder = gx_dir / "validations" / suite / "__none__" / stamp
    folder.mkdir(parents=True)
    body = {"meta": {"validation_time": "2026-11-28T02:00:05+00:00"}, "results": results}
    (folder / f"custpipe_pandas-{suite}.json").write_text(json.dumps(body))


def expectation(rule, success, element_count, unexpected, **result):
    return {
        "expectation_config": {"type": "t", "kwargs": {}, "meta": {"rule": rule}},
        "success": success,
        "result": {"element_count": element_count, "unexpected_count": unexpected} | result,
    }


def test_the_golden_suite_from_the_stored_gx_result_shows_counts_never_values(tmp_path):
    con = tiny_warehouse()
    con.execute(
        "INSERT INTO ops.stage_runs (stage, scope, run_id, business_date, mode, recorded_at) "
        "VALUES ('validate_golden', '', 'r1', ?, 'full', '2026-11-28 02:00:06')",
        [DAY],
    )
    gx_dir = tmp_path / "gx"
    gx_result(gx_dir, "golden_customers", "20261127T020000.000000Z", [
        expectation("golden_id_required", True, 9, 0),
    ])  # fmt: skip
    gx_result(gx_dir, "golden_customers", "20261128T020005.000000Z", [
        expectation("golden_id_required", True, 10, 0),
        expectation("golden_id_unique", True, 10, 0),
        # values as GX keeps them with include_values_in_docs on: never read
        expectation("golden_name_required", False, 10, 1, partial_unexpected_list=[CANARY]),
    ])  # fmt: skip
    golden = status(con, gx_dir, "golden_customers")
    assert golden.state == "blocked" and golden.rows == 10 and golden.business_date == DAY
    assert [r.state for r in golden.rules] == ["passed", "passed", "blocked"]
    assert CANARY not in repr(golden)


def test_a_raw_suite_without_a_stored_result_is_not_validated_yet(tmp_path):
    raw = status(None, tmp_path, "raw_erp")
    assert raw.state == "not validated" and {r.state for r in raw.rules} == {"not run"}


def test_every_suite_file_is_listed(tmp_path):
    listed = rules.suites(None, DEFAULT_EXPECTATIONS_DIR, tmp_path, SOURCES)
    assert sorted(s.name for s in listed) == load_suite_names(DEFAULT_EXPECTATIONS_DIR)


# --- over a real nightly run -------------------------------------------------------------------


def demo_suites(settings) -> list[rules.SuiteStatus]:
    from custpipe.config import load_config

    sources = list(load_config(settings.config_dir).sources)
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        return rules.suites(con, settings.expectations_dir, settings.gx_dir, sources)


def test_every_suite_of_the_demo_run_has_its_latest_validation(demo_run):
    deployment, _, _ = demo_run
    listed = {s.key: s for s in demo_suites(deployment.settings)}
    for source in ("crm", "erp", "sales", "service"):
        staged = listed[f"staged_customers_{source}"]
        assert staged.business_date == date(2026, 11, 27), source
        assert staged.state != "blocked"  # the demo's first night publishes
        assert all(r.state != "not run" for r in staged.rules), source
        assert listed[f"raw_{source}"].state == "passed"
    assert listed["golden_customers"].state == "passed"
    assert listed["orders"].validated
    assert listed["staged_customers"].state == "not validated"  # every source has its own


# --- the pages -----------------------------------------------------------------------------------


def local_only(page: str) -> None:
    """Every src= and href= of the page is a path on this server, a fragment or an inline
    `data:` URL (the empty favicon): nothing from a CDN or another site."""
    urls = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)["\']', page)
    assert urls
    for url in urls:
        local = url.startswith("/") and not url.startswith("//")
        assert local or url.startswith(("#", "data:")), url
    assert "style=" not in page and "<script>" not in page  # the CSP allows neither


@pytest.fixture
def viewer(demo_run):
    pytest.importorskip("custpipe.steward.store", reason="sign-in lands with the store")
    from custpipe_tests.steward.conftest import client

    deployment, _, _ = demo_run
    return client(deployment.settings, "viewer")


def test_the_rules_page_lists_every_suite_with_its_state(viewer, demo_run):
    deployment, _, _ = demo_run
    page = viewer.get("/rules")
    assert page.status_code == 200, page.text
    for suite in demo_suites(deployment.settings):
        assert f'href="/rules/{suite.key}"' in page.text
    assert "state-blocked" not in page.text  # nothing blocked the demo's night
    assert "records quarantined" in page.text
    local_only(page.text)


def test_a_suite_page_shows_every_rule_with_its_severity_and_fix(viewer, demo_run):
    deployment, _, _ = demo_run
    suite = next(s for s in demo_suites(deployment.settings) if s.key == "staged_customers_erp")
    page = viewer.get("/rules/staged_customers_erp")
    assert page.status_code == 200, page.text
    for rule in suite.rules:
        assert f'id="rule-{rule.name}"' in page.text
        assert f"severity-{rule.severity}" in page.text
    text = page.text.replace("&#39;", "'").replace("&quot;", '"')
    for rule in suite.rules:
        assert rule.description in text
    assert suite.state != "blocked" and "state-blocked" not in page.text
    local_only(page.text)


def test_an_unknown_suite_is_not_found(viewer):
    assert viewer.get("/rules/no_such_suite").status_code == 404


def test_a_blocked_night_says_blocked_and_names_the_rule(steward_settings):
    pytest.importorskip("custpipe.steward.store", reason="sign-in lands with the store")
    from custpipe_tests.steward.conftest import client

    steward_settings.data_dir.mkdir(parents=True)
    with warehouse.connect(steward_settings.warehouse_path) as con:
        add_run(con, "crm", "r1", 100, 2, False, {"name_mostly_present": 40, "name_required": 2})
        add_run(con, "erp", "r1", 100, 3, True, {"segment_crosswalk_covered": 3})
    viewer = client(steward_settings, "viewer")
    listing = viewer.get("/rules").text
    row = {
        key: chunk for key, chunk in re.findall(r'href="/rules/([^"]+)"(.*?)</tr>', listing, re.S)
    }
    assert "state-blocked" in row["staged_customers_crm"]
    assert "state-blocked" not in row["staged_customers_erp"]
    assert "3 records quarantined" in row["staged_customers_erp"]
    crm = viewer.get("/rules/staged_customers_crm").text
    assert re.search(r'id="rule-name_mostly_present".*?state-blocked', crm, re.S)
    erp = viewer.get("/rules/staged_customers_erp").text
    assert "state-blocked" not in erp


def test_a_night_stopped_by_a_check_outside_the_suite_says_so(tmp_path):
    con = tiny_warehouse()
    add_run(con, "erp", "r1", 100, 30, True, {"segment_crosswalk_covered": 30})
    con.execute("UPDATE quality.validation_runs SET volume_ok = FALSE")
    erp = status(con, tmp_path, "staged_customers_erp")
    assert erp.state == "quarantined"  # no block rule failed
    assert any("volume check" in n for n in erp.notes)
    assert any("suite_passes" in n for n in erp.notes)

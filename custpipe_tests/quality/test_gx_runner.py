"""Behaviour of custpipe.quality.gx_runner on the staged/golden/orders suites."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pandas as pd
import pytest

from custpipe.quality.gx_runner import (
    SuiteColumnsMissingError,
    SuiteNotFoundError,
    load_suite_names,
    validate_frame,
)
from custpipe_tests.quality.helpers import REPO_ROOT, make_staged_frame, source_id

NAME_NULL, COUNTRY_XX, SEGMENT_09, EMAIL_BAD, EMAIL_ABSENT = 2, 7, 11, 13, 17


def _seeded_frame() -> pd.DataFrame:
    df = make_staged_frame(50)
    df.loc[NAME_NULL, ["name", "name_key"]] = None
    df.loc[COUNTRY_XX, "country"] = "XX"
    df.loc[SEGMENT_09, "segment"] = "09"
    df.loc[EMAIL_BAD, "email_valid"] = False
    # legitimately absent values: the standardiser leaves *_valid null -> not a failure
    df.loc[EMAIL_ABSENT, ["email", "email_valid"]] = [None, pd.NA]
    df.loc[[3, 4], "phone"] = None
    df.loc[5, "tax_id"] = None  # a person (odd row): no tax ID required
    return df


def test_seeded_bad_rows_give_exact_ids_and_severities(expectations_dir, gx_dir):
    out = validate_frame(
        _seeded_frame(),
        "staged_customers_erp",
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        build_docs=False,
    )
    by_rule = {o.rule: o for o in out.outcomes}
    expected_failures = {
        "name_required": ("quarantine", (source_id(NAME_NULL),)),
        "name_key_required": ("quarantine", (source_id(NAME_NULL),)),
        "country_known": ("quarantine", (source_id(COUNTRY_XX),)),
        "segment_crosswalk_covered": ("quarantine", (source_id(SEGMENT_09),)),
        "email_valid": ("warn", (source_id(EMAIL_BAD),)),
    }
    for rule, (severity, ids) in expected_failures.items():
        o = by_rule[rule]
        assert (o.severity, o.success, o.failed_ids, o.failed) == (severity, False, ids, 1), o
        assert o.evaluated == 50
    passing = set(by_rule) - set(expected_failures)
    assert passing == {
        "source_id_required",
        "source_id_unique",
        "name_mostly_present",
        "country_mostly_present",
        "party_type_known",
        "country_required",
        "phone_valid_e164",
        "tax_id_check_digit",
        "company_tax_id_required",
        "no_formula_payload",
        "value_fits_published_length",
    }
    for rule in passing - {"name_mostly_present", "country_mostly_present"}:
        assert by_rule[rule].success and by_rule[rule].failed == 0 and not by_rule[rule].failed_ids
    # a "mostly" rule passes while still reporting the rows below its threshold
    mostly = by_rule["name_mostly_present"]
    assert (mostly.severity, mostly.success, mostly.failed) == ("block", True, 1)
    assert by_rule["country_mostly_present"].failed == 0
    assert not out.success
    assert not out.blocked
    assert out.quarantine_ids == {source_id(i) for i in (NAME_NULL, COUNTRY_XX, SEGMENT_09)}
    assert [o.rule for o in out.failures("warn")] == ["email_valid"]
    assert out.docs_index is None


def test_object_dtype_nulls_do_not_count_for_valid_flags(expectations_dir, gx_dir):
    df = make_staged_frame(10)
    df["email_valid"] = pd.Series([True, None, None, False] + [True] * 6, dtype=object)
    df["phone"] = pd.Series(["+4930123456", None, pd.NA, "+4912"] + list(df["phone"][4:]))
    out = validate_frame(
        df,
        "staged_customers_crm",
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        build_docs=False,
    )
    for rule in ("email_valid", "phone_valid_e164"):
        o = out.outcome(rule)
        assert (o.failed_ids, o.failed, o.evaluated) == ((source_id(3),), 1, 10), rule


def test_whole_column_of_null_names_blocks(expectations_dir, gx_dir):
    df = make_staged_frame(40)
    df["name"] = None
    out = validate_frame(
        df,
        "staged_customers_erp",
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        build_docs=False,
    )
    block = out.outcome("name_mostly_present")
    assert (block.severity, block.success, block.failed) == ("block", False, 40)
    assert out.blocked
    assert [o.rule for o in out.failures("block")] == ["name_mostly_present"]


def test_clean_frame_passes(expectations_dir, gx_dir, staged_frame):
    out = validate_frame(
        staged_frame,
        "staged_customers_sales",
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        build_docs=False,
    )
    assert out.success and not out.blocked
    assert len(out.outcomes) == 15
    assert "email_valid" not in {o.rule for o in out.outcomes}


def test_duplicate_and_null_source_ids_block(expectations_dir, gx_dir):
    df = make_staged_frame(20)
    df.loc[5, "source_id"] = source_id(4)
    df.loc[9, "source_id"] = None
    out = validate_frame(
        df,
        "staged_customers_service",
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        build_docs=False,
    )
    assert out.outcome("source_id_unique").failed_ids == (source_id(4),)
    assert out.outcome("source_id_unique").failed == 2
    required = out.outcome("source_id_required")
    assert (required.success, required.failed, required.failed_ids) == (False, 1, ())
    assert out.blocked


def _snapshot(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


def test_rerun_in_same_gx_dir_and_results_are_bounded(expectations_dir, gx_dir, staged_frame):
    before = _snapshot(expectations_dir)
    for build_docs in (False, True, True, True):
        out = validate_frame(
            staged_frame,
            "staged_customers_erp",
            expectations_dir=expectations_dir,
            gx_dir=gx_dir,
            results_limit=2,
            build_docs=build_docs,
        )
        assert out.success
        assert (out.docs_index is not None and out.docs_index.is_file()) == build_docs
    results = list((gx_dir / "validations" / "staged_customers_erp").rglob("*.json"))
    pages = list((gx_dir / "data_docs" / "validations" / "staged_customers_erp").rglob("*.html"))
    assert len(results) == 2
    assert len(pages) == 2
    assert (gx_dir / "data_docs" / "index.html").is_file()
    # the reviewed suites folder is read in place and never written to
    assert _snapshot(expectations_dir) == before


def test_unknown_suite_error_names_suite_dir_and_alternatives(expectations_dir, gx_dir):
    with pytest.raises(SuiteNotFoundError) as err:
        validate_frame(
            make_staged_frame(3),
            "staged_customers_nope",
            expectations_dir=expectations_dir,
            gx_dir=gx_dir,
        )
    msg = str(err.value)
    assert "staged_customers_nope" in msg
    assert str(expectations_dir) in msg
    assert "staged_customers_erp" in msg and "orders" in msg


def test_missing_column_error_names_suite_and_columns(expectations_dir, gx_dir):
    df = make_staged_frame(3).drop(columns=["segment", "phone", "party_type"])
    with pytest.raises(SuiteColumnsMissingError) as err:
        validate_frame(df, "staged_customers_erp", expectations_dir=expectations_dir, gx_dir=gx_dir)
    msg = str(err.value)
    assert "staged_customers_erp" in msg
    # columns of column-map, and of multicolumn (custom) expectations alike
    assert "segment" in msg and "phone" in msg and "party_type" in msg


def test_golden_and_orders_suites(expectations_dir, gx_dir):
    golden = pd.DataFrame({"golden_id": ["G1", "G2", "G2", None], "name": ["a", None, "c", "d"]})
    out = validate_frame(
        golden,
        "golden_customers",
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        id_column="golden_id",
        build_docs=False,
    )
    assert out.blocked
    assert out.outcome("golden_id_unique").failed_ids == ("G2",)
    assert out.outcome("golden_name_required").failed_ids == ("G2",)
    assert out.outcome("golden_id_required").failed == 1

    orders = pd.DataFrame(
        {
            "order_number": ["O1", "O2", "O3", "O4"],
            "amount": [10.0, -5.0, 0.0, None],
            "status": ["open", "weird", "completed", "cancelled"],
        }
    )
    out = validate_frame(
        orders,
        "orders",
        expectations_dir=expectations_dir,
        gx_dir=gx_dir,
        id_column="order_number",
        build_docs=False,
    )
    assert not out.blocked
    assert out.outcome("amount_non_negative").failed_ids == ("O2",)
    assert out.outcome("status_known").failed_ids == ("O2",)
    assert out.quarantine_ids == {"O2"}


def test_load_suite_names(expectations_dir, tmp_path):
    assert load_suite_names(expectations_dir) == [
        "golden_customers",
        "orders",
        "raw_crm",
        "raw_erp",
        "raw_sales",
        "raw_service",
        "staged_customers",
        "staged_customers_crm",
        "staged_customers_erp",
        "staged_customers_sales",
        "staged_customers_service",
    ]
    assert load_suite_names(tmp_path / "missing") == []


def test_import_does_not_load_great_expectations():
    code = (
        "import sys, custpipe.quality.gx_runner; "
        "sys.exit(1 if 'great_expectations' in sys.modules else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_a_raw_suite_reports_a_lost_column_and_duplicated_ids_as_failed_rules(
    expectations_dir, gx_dir
):
    from custpipe.config import load_config
    from custpipe.settings import DEFAULT_CONFIG_DIR

    columns = load_config(DEFAULT_CONFIG_DIR).sources["crm"].customers.source_columns()
    raw = pd.DataFrame({c: ["x", "y", "z"] for c in columns if c != "Phone"})
    raw["Id"] = ["001", "002", "002"]
    raw["Unused"] = "extra columns are fine"
    before = raw.copy()
    outcome = validate_frame(
        raw, "raw_crm", expectations_dir=expectations_dir, gx_dir=gx_dir, id_column="Id"
    )
    # GX reads the names of the columns no rule reads the values of (they reach it empty)
    pd.testing.assert_frame_equal(raw, before)  # the caller's frame keeps its values
    failed = {o.rule: (o.severity, o.failed) for o in outcome.outcomes if not o.success}
    assert failed == {
        "mapped_columns_present": ("block", 1),  # a failed rule, not an error
        "record_id_unique": ("block", 2),
    }
    assert outcome.outcome("record_id_unique").failed_ids == ("002",)
    raw["Phone"] = "+4930123456"
    outcome = validate_frame(
        raw, "raw_crm", expectations_dir=expectations_dir, gx_dir=gx_dir, id_column="Id"
    )
    assert outcome.outcome("mapped_columns_present").success


def test_a_suite_page_is_rendered_again_only_when_the_suite_changed(tmp_path, gx_dir, staged_frame):
    import json
    import shutil

    suites = tmp_path / "suites"
    shutil.copytree(REPO_ROOT / "expectations", suites)

    def validate() -> float:
        validate_frame(staged_frame, "staged_customers_erp", expectations_dir=suites, gx_dir=gx_dir)
        return page.stat().st_mtime_ns

    page = gx_dir / "data_docs" / "expectations" / "staged_customers_erp.html"
    first = validate()
    assert validate() == first  # the same suite: its page is not rendered again
    suite_file = suites / "staged_customers_erp.json"
    suite = json.loads(suite_file.read_text(encoding="utf-8"))
    assert suite["expectations"][2]["kwargs"] == {"column": "name", "mostly": 0.9}
    suite["expectations"][2]["kwargs"]["mostly"] = 0.37  # shown on the page as 37%
    suite_file.write_text(json.dumps(suite, ensure_ascii=False), encoding="utf-8")
    # "37" alone could be in the page's timestamp: look for the rendered threshold
    shown = re.compile(r">37</span> %")
    assert not shown.search(page.read_text(encoding="utf-8"))
    assert validate() != first
    assert shown.search(page.read_text(encoding="utf-8"))


def test_data_docs_templates_are_compiled_once_per_process(
    expectations_dir, gx_dir, staged_frame, monkeypatch
):
    from custpipe.quality import _gx_context

    cache = _gx_context.COMPILED_TEMPLATES
    compiled = []
    dump = cache.dump_bytecode
    monkeypatch.setattr(cache, "dump_bytecode", lambda b: compiled.append(b.key) or dump(b))

    def validate() -> None:
        validate_frame(
            staged_frame, "staged_customers_erp", expectations_dir=expectations_dir, gx_dir=gx_dir
        )

    validate()  # compiles what this process has not compiled yet
    assert set(cache.codes)  # the pages' templates
    compiled.clear()
    validate()
    assert compiled == []  # every template came from the cache
    pages = list((gx_dir / "data_docs" / "validations" / "staged_customers_erp").rglob("*.html"))
    assert len(pages) == 2 and all("staged_customers_erp" in p.read_text() for p in pages)


def test_data_docs_static_assets_are_copied_when_missing_or_changed(
    expectations_dir, gx_dir, staged_frame
):
    def validate() -> None:
        validate_frame(
            staged_frame, "staged_customers_erp", expectations_dir=expectations_dir, gx_dir=gx_dir
        )

    validate()
    static = gx_dir / "data_docs" / "static"
    files = sorted(p for p in static.rglob("*") if p.is_file())
    assert files  # GX's stylesheets, scripts and fonts
    stamps = {p: p.stat().st_mtime_ns for p in files}
    validate()
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # the same: not written again
    removed, changed = files[0], files[-1]
    original = changed.read_bytes()
    removed.unlink()
    changed.write_bytes(b"not GX's")
    validate()
    assert removed.is_file() and changed.read_bytes() == original

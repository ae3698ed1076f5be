"""The refactors of issue 14 change no result: the demo's outputs equal a recorded fingerprint.

The fingerprints were recorded at commit bba31f5 (before the table catalogue, the core gates
and the explicit DuckDB data flow) from the shared demo deployment: after its first night,
and after a second night on the same business date with 10 % of the customer records changed
(so that golden IDs are kept, merged and split, and the publish updates and retires). A
change that alters a staged record, a golden record or its ID history, an xref row, the
review queue, a discrepancy, the quarantine or a published row fails here. To accept an
intended change of results, record the files again (see `record` below) and say why in the
commit.
"""

from __future__ import annotations

import json
from pathlib import Path

from custpipe.config import load_config
from custpipe_tests.conftest import BUSINESS_DATE, run_nightly
from custpipe_tests.fingerprint import fingerprint

FIXTURES = Path(__file__).parent / "fixtures"
FIRST_NIGHT = FIXTURES / "demo_fingerprint.json"
SECOND_NIGHT = FIXTURES / "demo_fingerprint_second_night.json"


def demo_fingerprint(settings) -> dict:
    cfg = load_config(settings.config_dir)
    url = settings.expand(cfg.publish.connection.url)
    return fingerprint(settings.warehouse_path, url, cfg.publish.table)


def second_night(deployment, instance):
    """10 % of the demo's customer records changed at their sources, then the night again."""
    from custpipe.demo.changes import change_sources

    change_sources(deployment.settings.sources_dir, BUSINESS_DATE, fraction=0.1, seed=11)
    return run_nightly(deployment.settings, instance)


def _assert_equal(actual: dict, path: Path) -> None:
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert {t: v["rows"] for t, v in actual.items()} == {t: v["rows"] for t, v in expected.items()}
    assert actual == expected


def test_the_first_night_equals_the_recorded_fingerprint(demo_run):
    deployment, _, first = demo_run
    assert first.success
    _assert_equal(demo_fingerprint(deployment.settings), FIRST_NIGHT)


def test_a_second_night_with_changes_equals_the_recorded_fingerprint(demo_copy):
    deployment, instance, _ = demo_copy
    assert second_night(deployment, instance).success
    _assert_equal(demo_fingerprint(deployment.settings), SECOND_NIGHT)

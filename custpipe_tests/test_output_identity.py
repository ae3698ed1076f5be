"""The refactors of issue 14 change no result: the demo's outputs equal a recorded fingerprint.

The fingerprint was recorded at commit bba31f5 (before the table catalogue, the core gates
and the explicit DuckDB data flow) from the shared demo deployment. A change that alters a
golden record, an xref row, the review queue, a discrepancy, the quarantine or a published
row fails here. To accept an intended change of results, rewrite the file with
`python -m custpipe_tests.fingerprint` on the demo deployment and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

from custpipe.config import load_config
from custpipe_tests.fingerprint import fingerprint

RECORDED = Path(__file__).parent / "fixtures" / "demo_fingerprint.json"


def demo_fingerprint(settings) -> dict:
    cfg = load_config(settings.config_dir)
    url = settings.expand(cfg.publish.connection.url)
    return fingerprint(settings.warehouse_path, url, cfg.publish.table)


def test_the_demo_outputs_equal_the_recorded_fingerprint(demo_run):
    deployment, _, first = demo_run
    assert first.success
    expected = json.loads(RECORDED.read_text(encoding="utf-8"))
    actual = demo_fingerprint(deployment.settings)
    assert {t: v["rows"] for t, v in actual.items()} == {t: v["rows"] for t, v in expected.items()}
    assert actual == expected

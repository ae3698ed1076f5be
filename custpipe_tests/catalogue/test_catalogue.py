"""The bad-input catalogue, one test per case (see cases.py), with conservation after each."""

from __future__ import annotations

from collections import Counter

import pytest

from custpipe_tests.catalogue.cases import CASES
from custpipe_tests.catalogue.harness import Case, run_case
from custpipe_tests.conftest import require_services


def _server_up(kind: str) -> bool:
    import socket

    port = {"postgres": 5432, "mariadb": 3306}[kind]
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case: Case, tmp_path, monkeypatch):
    if case.services and not _server_up(case.services):
        if require_services():
            pytest.fail(f"{case.services} server required in CI")
        pytest.skip(f"no {case.services} server")
    run_case(case, tmp_path, monkeypatch)


def test_catalogue_is_complete():
    """At least 80 cases, unique ids, every kind the issue names."""
    ids = Counter(c.id for c in CASES)
    assert len(CASES) >= 80 and max(ids.values()) == 1
    kinds = {c.kind for c in CASES}
    assert {
        "file-format",
        "encoding",
        "ids",
        "dates",
        "amounts",
        "text",
        "security",
        "database",
        "warehouse",
        "config",
        "process",
    } <= kinds

"""`custpipe bench` never shows, stores or passes on the command line a publish password."""

from __future__ import annotations

import json
import sys

import pytest

PLANTED = "Pl4nted-Bench-Pw"


def test_an_unreachable_publish_target_is_reported_without_its_password(tmp_path, capsys):
    from custpipe import bench

    url = f"postgresql+psycopg://custpipe:{PLANTED}@127.0.0.1:1/erp"
    assert bench.main(["--publish-only", "--publish-url", url, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    stored = (tmp_path / "bench.json").read_text()
    assert "no database at postgresql+psycopg://custpipe:***@127.0.0.1:1/erp" in stored
    for text in (printed.out, printed.err, stored):
        assert PLANTED not in text


def test_the_publish_child_gets_the_url_from_its_environment_not_argv(tmp_path, monkeypatch):
    from custpipe import bench

    seen = {}

    def fake_run(cmd, check, env):  # the child: records what it was given
        seen["cmd"], seen["env"] = cmd, env
        out = cmd[-1]
        with open(out, "w", encoding="utf-8") as fh:
            json.dump({"dialect": "sqlite", "rows": 1}, fh)

    url = f"sqlite:///{tmp_path / 'erp.sqlite'}?password={PLANTED}"
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    figures = bench._publish_bench_in_child(url, 10, 0.1, tmp_path)
    assert figures["dialect"] == "sqlite" and PLANTED not in json.dumps(figures)
    assert seen["cmd"][:4] == [sys.executable, "-m", "custpipe.bench", "--publish-one"]
    assert not any(PLANTED in part for part in seen["cmd"])
    assert seen["env"][bench.CHILD_URL_ENV] == url


def test_the_child_reads_the_url_from_the_environment(tmp_path, monkeypatch):
    from custpipe import bench

    calls = []
    monkeypatch.setattr(bench, "publish_bench", lambda *a: calls.append(a) or {"rows": a[1]})
    monkeypatch.setenv(bench.CHILD_URL_ENV, "sqlite:///x.sqlite")
    out = tmp_path / "out.json"
    assert bench.main(["--publish-one", "7", "0.5", str(out)]) == 0
    assert calls == [("sqlite:///x.sqlite", 7, 0.5)]
    monkeypatch.delenv(bench.CHILD_URL_ENV)
    with pytest.raises(SystemExit, match=bench.CHILD_URL_ENV):
        bench.main(["--publish-one", "7", "0.5", str(out)])


def _run(seconds: float, peak: int, stages: dict) -> dict:
    return {"seconds": seconds, "peak_mb": peak, "stages": stages}


def test_the_report_says_which_targets_are_met():
    from custpipe import bench

    report = {
        "scales": [
            {"scale": 100_000, "runs": [_run(30, 1000, {"match": {"peak_mb": 500}})]},
            {
                "scale": 1_000_000,
                "runs": [_run(200, 3000, {"match": {"peak_mb": 2600}, "new": {"peak_mb": 9}})],
            },
        ]
    }
    checked = {what: (measured, ok) for what, measured, ok in bench.targets(report)}
    assert checked["1,000,000 records, first run, peak memory <= 3,072 MB"] == ("3,000 MB", True)
    assert checked["1,000,000 records, first run, end to end <= 180 s"] == ("200.0 s", False)
    assert checked["peak memory of 'match', 100k -> 1M, <= 5x"] == ("500 -> 2,600 MB, 5.2x", False)
    assert len(checked) == 3  # a stage without a 100k figure has no growth to check
    assert bench.targets({"scales": [report["scales"][0]]}) == []  # 100k alone: no target

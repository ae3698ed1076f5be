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


def _scale(scale: int, custpipe: dict, baseline: dict) -> dict:
    """One scale's figures in `bench_scale`'s shape (one run)."""
    run = {
        "label": "first run",
        "seconds": 30.0,
        "peak_mb": 1000,
        "rows_published": 10,
        "stages": {"match": {"seconds": 1.0, "peak_mb": 500}},
        "standardise_customers": {"rows": 100, "seconds": 1.0},
    }
    return {
        "scale": scale,
        "generation": {"source_records": scale, "order_rows": 0, "seconds": 1.0, "cached": True},
        "runs": [run],
        "matching": {"custpipe": custpipe, "baseline": baseline},
        "records_per_second": 100,
        "rerun_share": 0.5,
        "change_share": 0.5,
    }


def test_the_match_figures_give_f1_over_every_truth_record_and_among_the_consolidated():
    from custpipe.bench import quality_figures
    from custpipe.matching.evaluate import MatchQuality

    # 100 true pairs; 10 of them lost to quarantined records, 88 of the other 90 found
    quality = MatchQuality(
        records=180,
        predicted_pairs=88,
        true_pairs=100,
        true_positive_pairs=88,
        exact_clusters=0,
        entities=100,
        unconsolidated=20,
        true_pairs_consolidated=90,
    )
    figures = quality_figures(quality)
    assert figures["precision"] == 1.0
    assert figures["recall"] == 0.88 and figures["f1"] == round(2 * 0.88 / 1.88, 4)
    assert figures["recall_consolidated"] == round(88 / 90, 4)
    assert figures["f1_consolidated"] == round(2 * (88 / 90) / (1 + 88 / 90), 4)
    assert figures["unconsolidated"] == 20


def test_the_report_prints_both_f1_figures_for_custpipe_and_the_baseline():
    from custpipe import bench

    mine = {"seconds": 7.8, "f1": 0.9912, "f1_consolidated": 0.9992, "unconsolidated": 1234}
    base = {"seconds": 160.3, "peak_mb": 3176, "f1": 0.9915, "f1_consolidated": 0.9994}
    text = bench.format_report({"machine": {}, "scales": [_scale(1_000_000, mine, base)]})
    line = next(x for x in text.splitlines() if x.strip().startswith("matching:"))
    custpipe_part, baseline_part = line.split("Splink")
    assert "F1 0.9912 over every truth record (0.9992 among the consolidated" in custpipe_part
    assert "1,234 not consolidated" in custpipe_part
    assert "F1 0.9915 over every truth record (0.9994 among the consolidated" in baseline_part
    # a bench.json written before both figures were recorded still formats
    old = {"seconds": 1.0, "peak_mb": 1, "f1": 0.9994}
    text = bench.format_report({"machine": {}, "scales": [_scale(100_000, old, old)]})
    assert "custpipe 1.0 s, F1 0.9994;" in text


def _bench_with_fake_scale(monkeypatch, febrl_run) -> None:
    """`custpipe bench` with one fake scale and `febrl_run` as the FEBRL benchmark."""
    from custpipe import bench
    from custpipe.benchmarks import febrl

    figures = {"seconds": 1.0, "peak_mb": 1, "f1": 0.99, "f1_consolidated": 0.995}
    monkeypatch.setattr(
        bench, "bench_scale", lambda root, scale, *a: _scale(scale, figures, figures)
    )
    monkeypatch.setattr(febrl, "run", febrl_run)


def test_a_failed_febrl_benchmark_is_recorded_and_printed_and_the_figures_are_written(
    tmp_path, monkeypatch, capsys
):
    import subprocess

    from custpipe import bench

    def fails(*args, **kwargs):
        raise subprocess.CalledProcessError(1, ["python", "-m", "custpipe.benchmarks.febrl"])

    _bench_with_fake_scale(monkeypatch, fails)
    code = bench.main(["--scale", "1000", "--publish-url", "", "--out", str(tmp_path)])
    assert code == 1  # the bench says it failed, after writing everything it has
    report = json.loads((tmp_path / "bench.json").read_text())
    assert [s["scale"] for s in report["scales"]] == [1000]
    assert report["febrl"]["error"].startswith("CalledProcessError: Command")
    printed = capsys.readouterr()
    assert "FEBRL: FAILED: CalledProcessError" in printed.out
    assert "bench: the FEBRL benchmark FAILED: CalledProcessError" in printed.err


def test_a_failed_febrl_set_is_recorded_and_the_other_sets_still_run(tmp_path, monkeypatch):
    from custpipe import bench
    from custpipe.benchmarks import febrl

    def bench_set(root, name, deployment=None):
        if name == "febrl2":
            raise RuntimeError("febrl2: `custpipe train-model` failed (exit 2); see x.log")
        return {"set": name, "stub": True}

    monkeypatch.setattr(febrl, "bench_set", bench_set)
    figures = bench._febrl(tmp_path)
    assert [s["set"] for s in figures["sets"]] == list(febrl.SETS)  # febrl3, febrl4 still ran
    failed = figures["sets"][1]
    assert failed == {
        "set": "febrl2",
        "error": "RuntimeError: febrl2: `custpipe train-model` failed (exit 2); see x.log",
    }
    report = {"febrl": {"sets": [failed]}}
    assert bench.febrl_failures(report) == [f"FEBRL febrl2: {failed['error']}"]
    text = febrl.format_results([failed])
    assert "febrl2  FAILED: RuntimeError" in text
    assert "NOT MET  febrl2: custpipe F1" in text


def test_the_scale_figures_are_written_before_the_febrl_benchmark_starts(tmp_path, monkeypatch):
    from custpipe import bench

    def interrupted(*args, **kwargs):
        assert json.loads((tmp_path / "bench.json").read_text())["scales"][0]["scale"] == 1000
        raise KeyboardInterrupt  # not caught: the run stops, the scale figures are on disk

    _bench_with_fake_scale(monkeypatch, interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--scale", "1000", "--publish-url", "", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "bench.json").read_text())["scales"][0]["scale"] == 1000

"""The `custpipe` command: generate demo data, run the nightly job, print a summary."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from custpipe.steward import cli as steward_cli  # noqa: E402


def business_yesterday(timezone: str, now: datetime | None = None) -> date:
    """The day before today in `timezone`, the zone of the nightly partitions (`now`: aware)."""
    from zoneinfo import ZoneInfo

    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("business_yesterday needs a clock with a time zone (e.g. UTC)")
    return now.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


def resolve_business_date(args: argparse.Namespace, settings, now: datetime | None = None) -> date:
    """`--date`, else yesterday in the pipeline's configured `timezone` (pipeline.yaml)."""
    if args.date is not None:
        return args.date
    from custpipe.config import load_config

    return business_yesterday(load_config(settings.config_dir).timezone, now)


def cmd_demo_data(args: argparse.Namespace) -> int:
    """Generate the demo source systems."""
    from custpipe.demo.generate import generate_demo
    from custpipe.settings import Settings

    args.date = resolve_business_date(args, Settings.from_env())
    summary = generate_demo(
        Path(args.out), customers=args.customers, seed=args.seed, business_date=args.date
    )
    print(f"demo source systems written to {args.out} for business date {args.date}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the nightly job once, in process; with DAGSTER_HOME, as a run of workspace.yaml's
    code location (listed under the job in the UI), else in an ephemeral instance."""
    import dagster as dg

    from custpipe.defs.alerts import held_sources
    from custpipe.incremental import FULL_REFRESH_TAG
    from custpipe.settings import Settings

    settings = Settings.from_env()
    args.date = resolve_business_date(args, settings)
    tags = {FULL_REFRESH_TAG: "true"} if args.full_refresh else {}
    if os.environ.get("DAGSTER_HOME"):
        from custpipe.defs import workspace_run

        instance = dg.DagsterInstance.get()
        with workspace_run.workspace_job(instance, "nightly") as job:
            partition = {"dagster/partition": args.date.isoformat()}
            run = workspace_run.create_run(
                instance, job, run_config(None, args), partition | tags
            )
            print(f"running the nightly job for business date {args.date} ...", flush=True)
            result = workspace_run.execute_run(instance, job, run)
    else:
        print(
            "note: DAGSTER_HOME is not set, so this run will not appear in the Dagster UI "
            "(`make run` sets it)"
        )
        from custpipe.definitions import build_definitions

        instance = dg.DagsterInstance.ephemeral()
        defs = build_definitions(settings)
        print(f"running the nightly job for business date {args.date} ...", flush=True)
        result = defs.resolve_job_def("nightly").execute_in_process(
            partition_key=args.date.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config=run_config(defs, args),
            tags=tags or None,
        )
    skipped = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    if result.success:
        print(f"nightly run {result.run_id} for business date {args.date}: succeeded")
    else:
        print_unsuccessful_night(instance, result, args.date)
    for step in skipped:
        print(f"  skipped step: {step}")
    mats = [e.materialization for e in result.get_asset_materialization_events()]
    for source, reason in held_sources(mats):
        print(f"  HELD source: {source} (on_failure: hold; last good state published): {reason}")
    if result.success or args.summary_on_failure:
        print(render_summary(settings, result.run_id))
    return 0 if result.success else 1


def print_unsuccessful_night(instance, result, business_date: date) -> None:
    """Say whether the night was BLOCKED (a blocking check: the rule and its counts) or
    FAILED (an error: the step and its message), and whether the ERP got data; tag the run."""
    from custpipe.defs.alerts import night_of_run, tag_night

    night = night_of_run(instance, result.run_id)
    tag_night(instance, result.run_id, night)
    verdict = "BLOCKED" if night.kind == "blocked" else "FAILED"
    print(f"nightly run {result.run_id} for business date {business_date}: {verdict}")
    for block in night.blocks:
        print(f"  blocked by {block.text()}")
    failed = {e.step_key: failure_headline(e) for e in result.all_events if e.is_step_failure}
    for step in night.errors:
        print(f"  failed step: {step}: {failed.get(step, night.errors[step])}")
    print(
        "  the ERP got this night's data"
        if night.published
        else "  the ERP did NOT get this night's data (nothing was published)"
    )
    print("  what to do: README.md, section 'Runbook for on-call'")


def failure_headline(event) -> str:
    """The first line of a failed step's error (custpipe's errors carry no customer values),
    with any URL's password masked."""
    from custpipe.secrets import redact

    data = event.step_failure_data
    text = ""
    if data.user_failure_data is not None and data.user_failure_data.description:
        text = data.user_failure_data.description
    elif data.error is not None:
        error = data.error  # Dagster wraps the op's own error: show that one
        while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
            error = error.cause
        text = error.message
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return redact(lines[0]) if lines else "(no message; see the Dagster event log)"


def run_config(defs, args: argparse.Namespace) -> dict:
    """Run configuration of the nightly job from the command-line flags."""
    config: dict = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    options: dict = {}
    if args.full_refresh:  # every source extracted in full, every stage recomputed
        options["full_refresh"] = True
    if getattr(args, "engine", None):  # tonight's engine, over pipeline.yaml's
        options["engine"] = args.engine
    if options:
        config["resources"] = {"run_options": {"config": options}}
    return config


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration and list what it defines."""
    from custpipe.config import load_config
    from custpipe.matching.model import MatchModel
    from custpipe.quality.gx_runner import load_suite_names, read_suite
    from custpipe.settings import Settings

    settings = Settings.from_env()
    cfg = load_config(settings.config_dir)
    suites = load_suite_names(settings.expectations_dir)
    for suite_name in suites:
        read_suite(settings.expectations_dir, suite_name)  # a malformed suite names its file
    model_path = Path(settings.expand(cfg.matching.model))
    model = MatchModel.load(model_path)  # a broken model file names the file and the fix
    model.check_settings(cfg.match_settings(), model_path)  # trained under these settings
    from custpipe.steward.config import load_steward_config, load_users, users_path

    steward_cfg = load_steward_config(settings)  # steward.yaml: a bad key names the file
    users = load_users(users_path(settings, steward_cfg))
    print(f"configuration {settings.config_dir} is valid: {len(cfg.sources)} source(s)")
    print(f"  {len(suites)} suite file(s) in {settings.expectations_dir} are valid")
    print(f"  match model {model_path} is valid and trained under the configured settings")
    print(f"  stewards' workbench: auth {steward_cfg.auth}, {len(users)} user(s)")
    for name, source in cfg.sources.items():
        suite = f"staged_customers_{name}"
        suite = suite if suite in suites else "staged_customers (default)"
        datasets = ", ".join(
            f"{d} ({c.reader.kind}{', incremental' if c.reader.watermark else ''})"
            for d, c in source.datasets().items()
        )
        print(
            f"  {name:<10} trust {source.trust:<3} {datasets}; suite {suite}; "
            f"on_failure {source.on_failure}"
        )
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    """Map and standardise the first rows of a source and show what comes out."""
    import pandas as pd

    from custpipe.config import load_config
    from custpipe.mapping.preview import preview, profile
    from custpipe.settings import Settings

    settings = Settings.from_env()
    cfg = load_config(settings.config_dir)
    args.date = resolve_business_date(args, settings)
    if args.source not in cfg.sources:
        raise ValueError(f"no source '{args.source}' (configured: {', '.join(cfg.sources)})")
    staged, issues, notes = preview(
        cfg.sources[args.source], args.dataset, settings, args.date, args.rows
    )
    print(
        f"source '{args.source}', {args.dataset}: {len(staged)} row(s) previewed, nothing written"
    )
    for note in notes:
        print(f"  note: {note}")
    for issue in issues:
        print(f"  issue: {issue}")
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print(profile(staged).to_string(index=False))
        if args.show_values:  # customer values: only on explicit request, only to this terminal
            print(staged.drop(columns=["source_values", "record_hash"], errors="ignore").head(10))
    return 0


def cmd_train_model(args: argparse.Namespace) -> int:
    """Train the match model on the warehouse's staged records; write the model file."""
    from custpipe.config import load_config
    from custpipe.matching.model import train_and_save
    from custpipe.settings import Settings

    settings = Settings.from_env()
    cfg = load_config(settings.config_dir)
    path = Path(args.out or settings.expand(cfg.matching.model))
    trust = {name: s.trust for name, s in cfg.sources.items()}
    match = cfg.match_settings()
    model = train_and_save(settings.warehouse_path, path, trust, match, seed=args.seed)
    print(f"match model trained on {model.trained_records:,} records, written to {path}")
    print("  commit it: the nightly run predicts with this file")
    return 0


def read_truth(path: Path):
    """A ground-truth CSV (source_system, source_id, entity_id) as text columns."""
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(
            f"no ground truth at {path}: give --truth CSV (columns source_system, source_id, "
            "entity_id), or `custpipe evaluate --blocking` for the blocking counts without one"
        )
    truth = pd.read_csv(path, dtype=str)
    missing = {"source_system", "source_id", "entity_id"} - set(truth.columns)
    if missing:
        raise ValueError(f"{path}: columns {sorted(missing)} are missing")
    return truth


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Compare the consolidated customers with a ground-truth file; with --blocking, count
    the candidate pairs of each configured blocking rule (no ground truth or model needed)."""
    import json

    from custpipe import warehouse
    from custpipe.config import load_config
    from custpipe.matching.blocking import analyse_blocking, check_model_file
    from custpipe.matching.evaluate import (
        evaluate_matches,
        not_consolidated,
        staged_not_consolidated,
    )
    from custpipe.matching.settings import splink_settings
    from custpipe.matching.workspace import accepted_nodes
    from custpipe.settings import Settings

    settings = Settings.from_env()
    truth_path = Path(args.truth or settings.sources_dir / "ground_truth" / "customers.csv")
    with_truth = bool(args.truth) or truth_path.is_file() or not args.blocking
    truth = read_truth(truth_path) if with_truth else None
    cfg = load_config(settings.config_dir)
    configured = splink_settings(cfg.match_settings())  # blocking needs no trained model
    model_path = Path(settings.expand(cfg.matching.model))
    model = check_model_file(model_path, cfg.match_settings())
    figures: dict = {"model_file": model.as_dict(model_path), "blocking_rules_of": "pipeline.yaml"}
    _print_model_file(model)
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        ws = accepted_nodes(con, {name: s.trust for name, s in cfg.sources.items()})
        blocking = analyse_blocking(ws, configured, truth)
        figures["accepted_records"] = blocking.records
        if truth is not None:
            xref = con.execute(
                "SELECT source_system, source_id, golden_id FROM mdm.customer_xref"
            ).df()
            quarantined, staged_other = staged_not_consolidated(ws, not_consolidated(xref, truth))
    if truth is not None:
        quality = evaluate_matches(xref, truth)
        figures |= quality.as_dict() | {
            "unconsolidated_quarantined": quarantined,
            "unconsolidated_staged_later_or_unconfigured": staged_other,
            "unconsolidated_never_staged": quality.unconsolidated - quarantined - staged_other,
            "candidate_pairs": blocking.candidate_pairs,
            "blocking_recall": round(blocking.blocking_recall, 4),
        }
        _print_match_quality(truth_path, figures, quality, blocking)
    else:
        figures["candidate_pairs"] = blocking.candidate_pairs
        print(f"no ground truth at {truth_path}: blocking counts only (--truth CSV adds recall)")
    if args.blocking:
        figures["blocking_rules"] = blocking.as_dict()["rules"]
        _print_blocking(settings.config_dir / "pipeline.yaml", blocking)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
        print(f"  written to {args.json}")
    return 0


def _print_model_file(model) -> None:
    if model.state == "same":
        return
    if model.rules_differ is None:
        print("no usable match model file: analysing pipeline.yaml's blocking rules")
    elif model.rules_differ:
        print(
            "pipeline.yaml's blocking rules differ from the model file's: analysing "
            "pipeline.yaml's; retrain before the next run"
        )
    print(f"model file: {model.message}")


def _print_match_quality(truth_path: Path, figures: dict, quality, blocking) -> None:
    total = quality.records + quality.unconsolidated
    print(
        f"match quality against {truth_path} ({total:,} truth records, "
        f"{quality.records:,} consolidated; of the last consolidation):"
    )
    for key in ("precision", "recall", "f1", "exact_cluster_rate"):
        print(f"  {key:<20} {figures[key]:.4f}")
    print(
        f"  {'recall consolidated':<20} {figures['recall_consolidated']:.4f} (among the "
        "consolidated records only)"
    )
    print(
        f"  pairs predicted {quality.predicted_pairs:,}, true {quality.true_pairs:,}, "
        f"correct {quality.true_positive_pairs:,}"
    )
    print(
        f"  not consolidated: {quality.unconsolidated:,} truth record(s) "
        f"({figures['unconsolidated_quarantined']:,} quarantined, "
        f"{figures['unconsolidated_staged_later_or_unconfigured']:,} staged after the last "
        "consolidation or of an unconfigured source, "
        f"{figures['unconsolidated_never_staged']:,} never staged); their true pairs count "
        "as missed"
    )
    print(
        f"  blocking (pipeline.yaml's rules): {blocking.candidate_pairs:,} candidate pairs; "
        f"{blocking.true_pairs_blocked:,} of the {blocking.true_pairs:,} true pairs among "
        f"the accepted records are among them (blocking recall {figures['blocking_recall']:.4f})"
    )


def _print_blocking(pipeline_file: Path, blocking) -> None:
    with_truth = blocking.true_pairs is not None
    print(
        f"blocking rules of {pipeline_file} (matching.blocking_rules) on "
        f"{blocking.records:,} accepted records (a pair counts under the first rule that "
        "makes it):"
    )
    head = f"  {'#':>2} {'pairs':>12} {'cumulative':>12}"
    if with_truth:
        head += f" {'true pairs':>11} {'cumulative':>11} {'recall':>7}"
    print(head + "  rule")
    for i, rule in enumerate(blocking.rules):
        line = f"  {i + 1:>2} {rule.pairs:>12,} {rule.cumulative_pairs:>12,}"
        if with_truth:
            line += (
                f" {rule.true_pairs:>11,} {rule.cumulative_true_pairs:>11,}"
                f" {blocking.recall(i):>7.4f}"
            )
        print(f"{line}  {rule.rule}")
    if with_truth:
        print(f"  true pairs among the accepted records: {blocking.true_pairs:,}")


def cmd_decide(args: argparse.Namespace) -> int:
    """Record a steward decision (or a filled review sheet) in the steward store; the next
    run imports and honours it. Never opens the warehouse, so it never waits for a run."""
    import pandas as pd

    from custpipe.settings import Settings
    from custpipe.steward import store

    path = store.store_path(Settings.from_env())
    if args.file:
        rows = pd.read_csv(args.file, dtype=str, keep_default_na=False)
        needed = {"left", "right", "decision", "decided_by", "reason"}
        if needed - set(rows.columns):
            raise ValueError(f"{args.file}: needs columns {sorted(needed)}")
        items, lines = [], []
        for line, r in enumerate(rows.itertuples(), start=2):  # a spreadsheet's row number
            decision = r.decision.strip().lower().replace("-", "_")
            if decision:  # rows of the review sheet the steward left undecided are skipped
                items.append((r.left, r.right, decision, r.decided_by, r.reason))
                lines.append(line)
        try:
            store.record_decisions(path, items, origin="sheet")
        except store.InvalidDecision as exc:
            row = lines[exc.number - 1]
            raise ValueError(f"{args.file}, row {row}: {exc.problem}; nothing recorded") from None
        count = len(items)
    else:
        if not (args.decision and args.left and args.right):
            raise ValueError(
                "give DECISION LEFT RIGHT (split-out RECORD GOLDEN_ID), or --file decisions.csv"
            )
        if args.decision == "split-out":
            store.record_split(path, args.left, args.right, args.by, args.why, origin="cli")
        else:
            decision = args.decision.replace("-", "_")
            store.record_decision(
                path, args.left, args.right, decision, args.by, args.why, origin="cli"
            )
        count = 1
    print(f"{count} decision(s) recorded in {path}; the next run imports and honours them")
    return 0


def cmd_accept_volume(args: argparse.Namespace) -> int:
    """Accept a genuine drop of a source's volume: its latest validation becomes the baseline."""
    import datetime as dt

    from custpipe import warehouse
    from custpipe.quality.validate import accept_volume
    from custpipe.settings import Settings

    settings = Settings.from_env()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with warehouse.connect(settings.warehouse_path) as con, warehouse.transaction(con):
        run_id, rows = accept_volume(con, args.source, args.by, args.why, now)
    print(
        f"source '{args.source}': {rows} rows of run {run_id} accepted as the volume baseline "
        f"by {args.by}; run the night again to publish"
    )
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Print the summary of the warehouse's current state."""
    from custpipe.settings import Settings

    print(render_summary(Settings.from_env(), None))
    return 0


def render_summary(settings, run_id: str | None) -> str:
    """What the last run produced, and where to look (counts only, no customer values)."""
    from custpipe.summary import collect_summary, format_summary

    return format_summary(collect_summary(settings, run_id), settings)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date like 2026-11-27") from exc


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="custpipe", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo-data", help="generate the demo source systems")
    demo.add_argument("--customers", type=int, default=5000, help="real-world customers")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--out", default=str(Path(os.environ.get("CUSTPIPE_DATA", "data")) / "sources")
    )
    demo.add_argument(
        "--date",
        type=_date,
        default=None,
        help="business date (default: yesterday in the configured timezone)",
    )
    demo.set_defaults(func=cmd_demo_data)
    run = sub.add_parser("run", help="run the nightly job once for a business date")
    run.add_argument(
        "--date",
        type=_date,
        default=None,
        help="business date (default: yesterday in the configured timezone)",
    )
    run.add_argument("--summary-on-failure", action="store_true")
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="extract every row of incremental (watermarked) sources again, and recompute "
        "every stage in full, comparing the result with the incremental state",
    )
    run.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default=None,
        help="tonight's engine for staging's mapping and the pair scoring (default: "
        "pipeline.yaml's engine; spark needs custpipe[spark] and Java, README 'Spark')",
    )
    run.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Dagster console log level (default: WARNING; the full log is in the Dagster UI)",
    )
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate the configuration")
    check.set_defaults(func=cmd_check)
    prev = sub.add_parser("preview", help="map the first rows of a source, write nothing")
    prev.add_argument("source")
    prev.add_argument(
        "--dataset", default="customers", choices=["customers", "orders", "order_lines"]
    )
    prev.add_argument("--rows", type=int, default=1000)
    prev.add_argument(
        "--date",
        type=_date,
        default=None,
        help="business date (default: yesterday in the configured timezone)",
    )
    prev.add_argument(
        "--show-values", action="store_true", help="also print 10 staged rows (customer data!)"
    )
    prev.set_defaults(func=cmd_preview)
    train = sub.add_parser(
        "train-model", help="train the probabilistic match model on the staged records"
    )
    train.add_argument("--out", help="model file (default: matching.model of the config)")
    train.add_argument("--seed", type=int, default=42, help="seed of the random u-sampling")
    train.set_defaults(func=cmd_train_model)
    evaluate = sub.add_parser(
        "evaluate",
        help="match precision/recall against a ground truth; --blocking: pairs per blocking rule",
    )
    evaluate.add_argument(
        "--truth",
        help="CSV with source_system, source_id, entity_id "
        "(default: the demo's ground_truth/customers.csv)",
    )
    evaluate.add_argument(
        "--blocking",
        action="store_true",
        help="per blocking rule of pipeline.yaml's matching section (no trained model needed: "
        "try a rule before train-model): candidate pairs, new and cumulative (with a ground "
        "truth also true pairs and recall; without one, counts only)",
    )
    evaluate.add_argument("--json", help="also write the figures to this JSON file")
    evaluate.set_defaults(func=cmd_evaluate)
    decide = sub.add_parser(
        "decide",
        help="record a steward's must-link / cannot-link / split-out decision for the next run",
        description="Record a steward decision in the steward store (data/steward/"
        "steward.sqlite); the next nightly run imports and honours it. must-link / "
        "cannot-link LEFT RIGHT: two records; split-out RECORD GOLDEN_ID: the record leaves "
        "that golden record.",
    )
    decide.add_argument("decision", nargs="?", choices=["must-link", "cannot-link", "split-out"])
    decide.add_argument("left", nargs="?", help="source_system:source_id")
    decide.add_argument(
        "right", nargs="?", help="source_system:source_id (split-out: the golden ID)"
    )
    decide.add_argument("--by", default=os.environ.get("USER", ""), help="who decides")
    decide.add_argument("--why", default="", help="why (required)")
    decide.add_argument("--file", help="CSV with left, right, decision, decided_by, reason")
    decide.set_defaults(func=cmd_decide)
    accept = sub.add_parser(
        "accept-volume",
        help="accept a genuine drop of a source's rows (volume_stable) as its new baseline",
    )
    accept.add_argument("source")
    accept.add_argument("--by", default=os.environ.get("USER", ""), help="who accepts")
    accept.add_argument("--why", default="", help="why (required)")
    accept.set_defaults(func=cmd_accept_volume)
    summary = sub.add_parser("summary", help="summarise the warehouse")
    summary.set_defaults(func=cmd_summary)
    steward_cli.add_parser(sub)
    sub.add_parser("bench", help="the benchmark (`make bench`); see `custpipe bench --help`")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `custpipe` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        from custpipe.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"custpipe: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

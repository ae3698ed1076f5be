"""Incremental consolidation gives the tables a full consolidation gives, night after night.

Each step changes the accepted records (inserts, updates that merge and split clusters,
deletions, a quarantined record, steward decisions), then consolidates twice from the same
state: incrementally in the warehouse, and in full in a copy of it. The golden records,
xref, review queue and the kept scored pairs must agree, bookkeeping columns aside.
"""

import shutil
from dataclasses import replace
from datetime import date

import duckdb
import pandas as pd
import pytest

from custpipe import warehouse
from custpipe.incremental import Schedule, differences, plan_stage
from custpipe.matching.consolidate import OUTPUTS, Matcher, consolidate, plan_consolidation
from custpipe.matching.decisions import record_decision
from custpipe.matching.model import MatchModel
from custpipe.settings import DEFAULT_CONFIG_DIR

MODEL = MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")
MATCHER = Matcher(MODEL, auto_merge=0.99999, review=0.8)  # as the demo fixture: a queue
TRUST = {"erp": 1, "crm": 2, "sales": 3, "service": 4}
STATE = (*OUTPUTS, "mdm.match_pairs", "mdm.match_records")


@pytest.fixture
def twin(demo_run, tmp_path):
    """A warehouse holding the demo's staged records and validations, consolidated once."""
    deployment, _, _ = demo_run
    path = tmp_path / "incremental.duckdb"
    with warehouse.connect(path) as con:
        con.execute(f"ATTACH '{deployment.settings.warehouse_path}' AS demo (READ_ONLY)")
        for table in ("staging.customers", "quality.quarantine", "quality.validation_runs"):
            con.execute(f"INSERT INTO {table} SELECT * FROM demo.{table}")
        con.execute("DETACH demo")
        consolidate(con, "night-0", TRUST, "erp", MATCHER)
    return path


def night(path, tmp_path, run_id: str, change, last_inputs: str | None = None) -> tuple:
    """Apply `change(con)`, then consolidate incrementally in `path` (after a night that
    read `last_inputs`) and in full in a copy; return (incremental result, full result,
    differences between the two warehouses)."""
    with warehouse.connect(path) as con:
        change(con)
    full_path = tmp_path / f"full-{run_id}.duckdb"
    shutil.copy(path, full_path)
    with warehouse.connect(path) as con:
        inc = consolidate(
            con, run_id, TRUST, "erp", MATCHER, incremental=True, last_inputs=last_inputs
        )
    with warehouse.connect(full_path) as con:
        full = consolidate(con, run_id, TRUST, "erp", MATCHER)
        con.execute(f"ATTACH '{path}' AS inc (READ_ONLY)")
        diffs = differences(con, {t: (t, f"inc.{t}") for t in STATE})
        con.execute("DETACH inc")
    return inc, full, diffs


def _ids(con, sql: str, params=None) -> list[tuple[str, str]]:
    return [tuple(r) for r in con.execute(sql, params or []).fetchall()]


def _copy_records(con, keys: list[tuple[str, str]], suffix: str, **changes) -> None:
    """Stage copies of records under new ids (`<id><suffix>`), with columns changed."""
    rows = pd.concat(
        [
            con.execute(
                "SELECT * FROM staging.customers WHERE source_system = ? AND source_id = ?", k
            ).df()
            for k in keys
        ]
    )
    rows["source_id"] = rows["source_id"] + suffix
    rows["raw_hash"] = rows["raw_hash"] + 1
    for column, value in changes.items():
        rows[column] = value
    warehouse.append_rows(con, "staging.customers", rows)


def _restaged(key: tuple[str, str], assignment: str):
    """A change (for `night`) that restages record `key` with `assignment` (SQL SET)."""

    def change(con) -> None:
        con.execute(
            f"UPDATE staging.customers SET {assignment}, raw_hash = raw_hash + 1 "
            "WHERE source_system = ? AND source_id = ?",
            list(key),
        )

    return change


def _merged_pair(con) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two records of one golden record, from different sources."""
    row = con.execute("""
        SELECT min(source_system || ':' || source_id), max(source_system || ':' || source_id)
        FROM mdm.customer_xref GROUP BY golden_id HAVING count(DISTINCT source_system) > 1
        ORDER BY golden_id LIMIT 1
    """).fetchone()
    return tuple(row[0].split(":", 1)), tuple(row[1].split(":", 1))


def test_every_night_equals_a_full_recompute(twin, tmp_path):
    nights = []

    def inserts(con):  # duplicates of existing customers arrive from a new branch
        company = _ids(
            con,
            "SELECT source_system, source_id FROM staging.customers WHERE tax_id_valid "
            "AND party_type = 'company' ORDER BY source_system, source_id LIMIT 1",
        )
        for suffix, tax_id in (("-ka1", "111111111"), ("-ka2", "999999999")):  # an exclusion
            _copy_records(  # keeps these two apart, in a component no later night touches
                con, company, suffix, email="kept.apart@example.org", email_valid=True,
                tax_id=tax_id, tax_id_valid=True,
            )  # fmt: skip
        keys = _ids(
            con,
            "SELECT source_system, source_id FROM mdm.customer_xref ORDER BY golden_id LIMIT 15",
        )
        _copy_records(con, keys, "-dup")
        _copy_records(
            con,
            keys[:5],
            "-new",
            name="Zyx Unmatched Holding",
            email=None,
            email_valid=None,
            phone=None,
            phone_valid=None,
            tax_id=None,
            tax_id_valid=None,
            street="Nowhere 1",
            postal_code="99999",
        )

    def merge(con):  # a record takes another cluster's tax ID and e-mail: two clusters merge
        singles = """SELECT x.source_system, x.source_id FROM mdm.customer_xref x
            JOIN staging.customers s USING (source_system, source_id)
            JOIN mdm.golden_customers g USING (golden_id)
            WHERE s.tax_id_valid AND s.party_type = 'company' AND g.member_count = {n}
            ORDER BY x.golden_id LIMIT 1"""
        a, b = _ids(con, singles.format(n=1))[0], _ids(con, singles.format(n=2))[0]
        con.execute(
            """UPDATE staging.customers t SET tax_id = o.tax_id, country = o.country,
            raw_hash = t.raw_hash + 7 FROM staging.customers o
            WHERE t.source_system = ? AND t.source_id = ? AND o.source_system = ?
              AND o.source_id = ?""",
            [*a, *b],
        )

    def split(con):  # a merged record becomes someone else entirely
        _, b = _merged_pair(con)
        con.execute(
            """UPDATE staging.customers SET name = 'Qwv Separate Trading',
            name_key = 'qwv separate trading', email = NULL, email_valid = NULL,
            phone = NULL, phone_valid = NULL, tax_id = NULL, tax_id_valid = NULL,
            street = 'Elsewhere 9', postal_code = '11111', raw_hash = raw_hash + 3
            WHERE source_system = ? AND source_id = ?""",
            list(b),
        )

    def delete(con):  # records deleted at the source, one of them a whole golden record
        con.execute("""DELETE FROM staging.customers WHERE (source_system, source_id) IN (
            SELECT (source_system, source_id) FROM mdm.customer_xref ORDER BY golden_id DESC
            LIMIT 6)""")

    def quarantine(con):  # a validation holds an accepted record back
        key = _ids(
            con, "SELECT source_system, source_id FROM mdm.customer_xref ORDER BY source_id LIMIT 1"
        )[0]
        con.execute(
            "INSERT INTO quality.validation_runs (run_id, source_system, validated_at) "
            "VALUES ('v-late', ?, TIMESTAMP '2030-01-01')",
            [key[0]],
        )
        con.execute(
            """INSERT INTO quality.quarantine (source_system, source_id, rule, run_id)
            SELECT source_system, source_id, 'carried', 'v-late' FROM quality.quarantine q
            WHERE source_system = $1 AND run_id = (SELECT arg_max(run_id, validated_at)
                FROM quality.validation_runs WHERE source_system = $1 AND run_id <> 'v-late')
            UNION ALL SELECT $1, $2, 'name_present', 'v-late'""",
            list(key),
        )

    def decisions(con):  # a steward splits a merged pair and joins a reviewed one
        a, b = _merged_pair(con)
        record_decision(con, ":".join(a), ":".join(b), "cannot_link", "ann", "two firms")
        pair = con.execute(
            "SELECT left_source_system || ':' || left_source_id, "
            "right_source_system || ':' || right_source_id FROM mdm.match_review "
            "WHERE score IS NOT NULL ORDER BY score DESC LIMIT 1"
        ).fetchone()
        if pair:
            record_decision(con, pair[0], pair[1], "must_link", "ann", "same customer")

    def nothing(con):
        pass

    last_inputs, kept = None, {}
    for i, change in enumerate((inserts, merge, split, delete, quarantine, decisions, nothing)):
        inc, full, diffs = night(twin, tmp_path, f"night-{i + 1}", change, last_inputs)
        nights.append((change.__name__, inc))
        with warehouse.connect(twin) as con:
            (kept[change.__name__],) = con.execute(
                "SELECT count(*) FROM mdm.match_review WHERE explanation LIKE '%kept_apart%'"
            ).fetchone()
        last_inputs = inc.inputs
        assert diffs == {}, f"after '{change.__name__}': {diffs}"
        assert inc.golden == full.golden and inc.events == full.events, change.__name__
        assert inc.review_pairs == full.review_pairs, change.__name__
    # every change is seen in the inputs' digest: only the night of no change writes nothing
    assert [name for name, r in nights if r.unchanged] == ["nothing"]
    figures = {name: (r.changed_records, r.golden_rebuilt) for name, r in nights}
    assert figures["nothing"] == (0, 0)
    assert 0 < figures["inserts"][0] <= 22 and figures["merge"][0] == 1  # only what changed
    assert figures["split"][0] == 1 and figures["split"][1] >= 2  # the cluster and the record
    assert figures["decisions"][0] == 0 and figures["decisions"][1] >= 2
    events = {name: r.events for name, r in nights}
    assert events["merge"].get("merged") and events["split"].get("split", 0) + events["split"].get(
        "created", 0
    )
    assert events["delete"].get("retired")
    assert kept["merge"] > 0  # links an exclusion left out, outside the night's scope


def test_a_change_of_meaning_or_a_full_refresh_recomputes_in_full(empty_warehouse):
    con = empty_warehouse
    parts = {"model_file": "a", "thresholds": "1"}
    nightly = Schedule(enabled=True, full_every_days=7, business_date=date(2026, 11, 2))
    refresh_asked = replace(nightly, full_refresh=True)
    first = plan_stage(con, "consolidate", "", parts, nightly)
    assert (first.mode, first.compare) == ("full", False) and "first run" in first.reason
    _record(con, first, date(2026, 11, 1))
    assert plan_stage(con, "consolidate", "", parts, nightly).incremental
    changed = plan_stage(con, "consolidate", "", parts | {"thresholds": "2"}, refresh_asked)
    assert (changed.mode, changed.compare) == ("full", False)
    assert changed.reason == "the meaning of past results changed: thresholds"
    refresh = plan_stage(con, "consolidate", "", parts, refresh_asked)
    assert (refresh.mode, refresh.compare, refresh.reason) == (
        "full",
        True,
        "full refresh requested",
    )
    weekly = plan_stage(
        con, "consolidate", "", parts, replace(nightly, business_date=date(2026, 11, 8))
    )
    assert weekly.compare and "periodic full consistency run" in weekly.reason
    assert "2026-11-01" in weekly.reason
    off = plan_stage(con, "consolidate", "", parts, replace(nightly, enabled=False))
    assert off.mode == "full" and "incremental.enabled: false" in off.reason


def test_a_term_frequency_model_never_consolidates_incrementally(empty_warehouse, monkeypatch):
    import custpipe.matching.consolidate as module

    con = empty_warehouse
    parts, nightly = {"model_file": "a"}, Schedule(business_date=date(2026, 11, 2))
    _record(con, plan_consolidation(con, MATCHER, parts, nightly), date(2026, 11, 1))
    assert plan_consolidation(con, MATCHER, parts, nightly).incremental
    monkeypatch.setattr(module, "needs_full_scoring", lambda model: "term frequency")
    plan = plan_consolidation(con, MATCHER, parts, nightly)
    assert (plan.mode, plan.reason, plan.compare) == ("full", "term frequency", False)
    refresh = plan_consolidation(con, MATCHER, parts, replace(nightly, full_refresh=True))
    assert (refresh.reason, refresh.compare) == ("full refresh requested", True)


def _record(con, plan, day):
    from datetime import datetime

    from custpipe.incremental import record_stage

    record_stage(con, plan, "r1", day, datetime(2026, 11, 2))


def test_a_full_recompute_reports_where_the_incremental_state_went_wrong(twin):
    with warehouse.connect(twin) as con:
        con.execute(
            "UPDATE mdm.golden_customers SET city = 'Wrong' WHERE golden_id IN "
            "(SELECT golden_id FROM mdm.golden_customers ORDER BY golden_id LIMIT 2)"
        )
        con.execute(
            "DELETE FROM mdm.match_pairs WHERE (left_source_system, left_source_id) IN "
            "(SELECT (left_source_system, left_source_id) FROM mdm.match_pairs "
            "ORDER BY left_source_id LIMIT 1)"
        )
        result = consolidate(con, "night-x", TRUST, "erp", MATCHER, compare=True)
        again = consolidate(con, "night-y", TRUST, "erp", MATCHER, compare=True)
    # two wrong golden rows (each in one image and not the other), the lost stored pair(s)
    assert result.differences["mdm.golden_customers"] == 4
    assert result.differences["mdm.match_pairs"] >= 1
    assert again.differences == {}


def test_a_compared_full_run_on_a_night_of_changes_finds_no_difference(twin):
    with warehouse.connect(twin) as con:
        keys = _ids(con, "SELECT source_system, source_id FROM mdm.customer_xref LIMIT 8")
        _copy_records(con, keys, "-dup")
        con.execute(
            "DELETE FROM staging.customers WHERE source_id IN (SELECT source_id FROM "
            "mdm.customer_xref ORDER BY source_id DESC LIMIT 3)"
        )
        result = consolidate(con, "night-c", TRUST, "erp", MATCHER, compare=True)
    assert result.differences == {} and not result.incremental
    assert result.events  # tonight's changes happened, and are no difference


def test_incremental_state_needs_no_rescoring_of_unchanged_pairs(twin):
    with warehouse.connect(twin) as con:
        before = con.execute("SELECT count(*) FROM mdm.match_pairs").fetchone()[0]
        result = consolidate(con, "n", TRUST, "erp", MATCHER, incremental=True)
        after = con.execute("SELECT count(*) FROM mdm.match_pairs").fetchone()[0]
    assert before > 0 and after == before
    assert (result.changed_records, result.golden_rebuilt, result.golden_removed) == (0, 0, 0)


def test_transaction_failure_leaves_the_last_good_state(twin, monkeypatch):
    import custpipe.matching.consolidate as module

    with warehouse.connect(twin) as con:
        con.execute(
            "UPDATE staging.customers SET street = street || ' 1a', "
            "raw_hash = raw_hash + 1 WHERE source_id IN (SELECT source_id FROM "
            "staging.customers ORDER BY source_id LIMIT 3)"
        )
        state = {
            t: con.execute(f"SELECT count(*), sum(hash(columns(*))) FROM {t}").fetchone()
            for t in ("mdm.match_records", "mdm.golden_customers")
        }

        def boom(*args, **kwargs):
            raise duckdb.IOException("disk full")

        monkeypatch.setattr(module, "review_queue", boom)
        with pytest.raises(duckdb.IOException):
            consolidate(con, "fails", TRUST, "erp", MATCHER, incremental=True)
        for table, figures in state.items():
            assert (
                con.execute(f"SELECT count(*), sum(hash(columns(*))) FROM {table}").fetchone()
                == figures
            )
        monkeypatch.undo()
        result = consolidate(con, "next", TRUST, "erp", MATCHER, incremental=True)
    assert result.changed_records == 3  # the failed night's change is not lost


def _stored_input(changed: int, records: list[tuple], columns: tuple[str, ...], stale=()):
    """A workspace whose nodes are `records` ((node, source_system, source_id, *values of
    `columns`)), `changed` the changed node, and mdm.match_records their match input (plus
    `stale` stored rows (source_system, source_id, *values) of no record tonight)."""
    from custpipe.matching.model import MATCH_COLUMNS
    from custpipe.matching.workspace import MatchWorkspace

    con = duckdb.connect()
    ws = MatchWorkspace(con, records=len(records))
    con.execute(f"CREATE TEMP TABLE {ws.changed} AS SELECT {changed} AS node")
    nodes = pd.DataFrame([r[:3] for r in records], columns=["node", "source_system", "source_id"])
    stored = pd.DataFrame(
        [r[1:] for r in records] + list(stale), columns=["source_system", "source_id", *columns]
    )
    for column in MATCH_COLUMNS:
        if column not in columns:
            stored[column] = None
    con.register("nodes_frame", nodes)
    con.register("stored_frame", stored)
    con.execute("CREATE SCHEMA mdm")
    con.execute(f"CREATE TEMP TABLE {ws.nodes} AS SELECT * FROM nodes_frame")
    con.execute("CREATE TABLE mdm.match_records AS SELECT * FROM stored_frame")
    return ws


def test_splink_gets_the_changed_records_and_what_a_blocking_rule_joins_to_them():
    from custpipe.matching.pairs import _changed_and_partners

    # tonight's records with their match input as mdm.match_records keeps it
    records = [(1, "crm", "c1", "a", "x"), (2, "crm", "c2", "a", "y"), (3, "erp", "e3", "b", "y"),
               (4, "erp", "e4", "c", "z")]  # fmt: skip
    ws = _stored_input(2, records, ("email", "phone"), stale=[("erp", "gone", "a", "y")])
    rules = [{"blocking_rule": 'l."email" = r."email"'}, 'l."phone" = r."phone"']
    got = _changed_and_partners(ws, [], {"blocking_rules_to_generate_predictions": rules})
    # 1 shares the e-mail, 3 the phone of the changed record 2; 4 shares nothing; a stored
    # record that is no record tonight (erp:gone) is nobody's partner
    assert got.column("unique_id").to_pylist() == [1, 2, 3]
    assert got.column("changed").to_pylist() == [False, True, False]
    assert got.column("email").to_pylist() == ["a", "a", "b"]  # the stored match input
    salted = [{"blocking_rule": 'l."email" = r."email"', "salting_partitions": 4}]
    kept = _changed_and_partners(ws, [], {"blocking_rules_to_generate_predictions": salted})
    assert kept.column("unique_id").to_pylist() == [1, 2, 3, 4]  # not a plain join: all stay
    prefixed = _changed_and_partners(
        ws, ["email_prefix1"], {"blocking_rules_to_generate_predictions": rules}
    )
    assert "email_prefix1" in prefixed.column_names  # derived blocking columns are made


@pytest.mark.parametrize(
    "rule, expected",
    [
        ('(l."party_type" = r."party_type") AND (l."email" = r."email")', True),
        ("r.a = l.a", True),
        ("l.a = r.b", False),  # e-mail of one, phone of the other: each side its own partners
        ("l.a = r.a AND l.b > 5", False),
        ("levenshtein(l.x, r.x) < 2", False),  # symmetric, but not certainly: both sides
    ],
)
def test_a_blocking_rule_is_joined_once_only_when_it_is_certainly_symmetric(rule, expected):
    from custpipe.matching.pairs import symmetric

    assert symmetric(rule) is expected


def test_an_asymmetric_rule_finds_partners_on_either_side():
    from custpipe.matching.pairs import _changed_and_partners

    records = [(1, "s", "a", "x", "1"), (2, "s", "b", "y", "x"), (3, "s", "c", "x", "y")]
    ws = _stored_input(2, records, ("email", "phone"))
    rules = ['l."email" = r."phone"']  # 1's e-mail is 2's phone; 2's e-mail is 3's phone
    got = _changed_and_partners(ws, [], {"blocking_rules_to_generate_predictions": rules})
    assert got.column("unique_id").to_pylist() == [1, 2, 3]


def test_a_phonetic_blocking_key_finds_partners_from_the_stored_match_input():
    from custpipe.matching.pairs import _changed_and_partners

    records = [(1, "s", "a", "müller"), (2, "s", "b", "mueller"), (3, "s", "c", "schmidt")]
    ws = _stored_input(1, records, ("family_name",))
    rules = ['l."family_name_soundex" = r."family_name_soundex"']
    got = _changed_and_partners(
        ws, ["family_name_soundex"], {"blocking_rules_to_generate_predictions": rules}
    )
    assert got.column("unique_id").to_pylist() == [1, 2]  # müller and mueller: M460
    assert got.column("family_name_soundex").to_pylist() == ["M460", "M460"]


def test_a_night_makes_the_match_input_of_the_restaged_records_only(twin, tmp_path, monkeypatch):
    """The match input (regular expressions, accents: most of an incremental night's
    matching at 1M records) is made for the records whose staged row changed; the others'
    is read from mdm.match_records, which then equals a full recompute's, column for
    column."""
    from custpipe.matching import pairs

    made = []
    real = pairs.match_input

    def spy(ws, derived, nodes=None):
        table = real(ws, derived, nodes=nodes)
        made.append(table.num_rows)
        return table

    monkeypatch.setattr(pairs, "match_input", spy)
    with warehouse.connect(twin) as con:
        a, _ = _merged_pair(con)

    # one record's e-mail changes: a new staged row
    restage = _restaged(a, "email = 'new.' || coalesce(email, 'x@example.org')")
    inc, full, diffs = night(twin, tmp_path, "night-1", restage)
    assert diffs == {}
    assert made == [1, full.records]  # tonight's one restaged record; the full night's all
    assert inc.records == full.records > 1


def test_a_touched_cluster_rewrites_only_the_xref_rows_that_changed(twin, tmp_path):
    """A member's staged row changes outside what links it: its cluster is consolidated again
    and its golden record rebuilt, but no xref row of the cluster changed, so each keeps the
    run that wrote it; the night still equals a full recompute."""
    with warehouse.connect(twin) as con:
        a, b = _merged_pair(con)

    inc, _, diffs = night(twin, tmp_path, "night-1", _restaged(a, "segment = 'Z'"))
    assert diffs == {}
    with warehouse.connect(twin, read_only=True) as con:
        runs = _ids(
            con,
            "SELECT x.run_id, g.run_id FROM mdm.customer_xref x "
            "JOIN mdm.golden_customers g USING (golden_id) "
            "WHERE x.source_system || ':' || x.source_id IN (?, ?)",
            [":".join(a), ":".join(b)],
        )
    assert inc.golden_rebuilt >= 1
    assert runs == [("night-0", "night-1"), ("night-0", "night-1")]

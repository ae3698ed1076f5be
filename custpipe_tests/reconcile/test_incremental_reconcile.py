"""Incremental reconciliation gives exactly the findings of a full recompute, night after night.

Each test builds the warehouse's inputs (staged orders and lines, staged customers, xref,
golden customers) by a sequence of changes; after every step the incremental run's
recon.order_discrepancies (run_id aside) must equal orders.sql over every order.
"""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta

import pandas as pd
import pytest

from custpipe import incremental
from custpipe.reconcile import orders as recon
from custpipe.warehouse import append_rows, registered

RULES = recon.ReconcileRules("erp", "erp", 0.01, 3)
SOURCES = ["erp", "sales"]
NIGHTS = itertools.count()  # each run recorded later than the one before


def plan(con, rules=RULES, sources=SOURCES, **kw):
    options = {"enabled": True, "full_every_days": None, "full_refresh": False}
    return incremental.plan_stage(
        con,
        recon.STAGE,
        "",
        recon.fingerprint_parts(rules, sources),
        incremental.Schedule(business_date=None, **(options | kw)),
    )


def night(con, run_id, rules=RULES, **kw):
    """One reconciliation as the asset runs it; returns (plan, result)."""
    p = plan(con, rules, **kw)
    at = datetime(2026, 11, 28, 2, 0) + timedelta(minutes=next(NIGHTS))
    return p, recon.reconcile(con, rules, p, run_id, None, at)


def assert_identical(con, rules=RULES):
    full = recon.find_discrepancies(
        con, rules.system_of_record, rules.erp_source, rules.tolerance, rules.date_window_days
    )
    with registered(con, "full_now", full):
        diffs = incremental.differences(
            con, {recon.TABLE: ("full_now", f"(SELECT * EXCLUDE (run_id) FROM {recon.TABLE})")}
        )
    assert diffs == {}, diffs
    return full


def order(system, source_id, number, customer, amount=10.0, status="open", day="2026-11-01"):
    return {
        "source_system": system,
        "source_id": source_id,
        "order_number": number,
        "customer_ref": customer,
        "amount": amount,
        "currency": "EUR",
        "status": status,
        "order_date": pd.Timestamp(day),
    }


@pytest.fixture
def con(empty_warehouse):
    c = empty_warehouse
    members = [("erp", "K1", "G1"), ("erp", "K2", "G1"), ("sales", "S1", "G1")]
    members += [("erp", "K3", "G2"), ("sales", "S3", "G2"), ("erp", "K4", "G4")]
    members += [("sales", "S4", "G4")]
    xref = pd.DataFrame(members, columns=["source_system", "source_id", "golden_id"])
    append_rows(c, "mdm.customer_xref", xref)
    golden = {"golden_id": ["G1", "G2", "G4"], "erp_customer_number": ["K1", "K3", "K4"]}
    append_rows(c, "mdm.golden_customers", pd.DataFrame(golden))
    staged = xref[["source_system", "source_id"]]
    append_rows(c, "staging.customers", pd.concat([staged, pd.DataFrame([("erp", "KQ")],
                columns=["source_system", "source_id"])]))  # fmt: skip
    rows = [
        order("erp", "1", "1", "K1"),
        order("sales", "SO-1", "1", "S1", status="done"),  # status mismatch
        order("erp", "2", "2", "K1"),
        order("sales", "SO-2", "2", "S1", amount=12.0),  # amount mismatch
        order("erp", "3", "3", "K2"),  # duplicate customer (K2 is G1's duplicate)
        order("erp", "4", "4", "K3", amount=50.0, day="2026-11-05"),
        order("sales", "SO-9", "9", "S3", amount=50.0, day="2026-11-06"),  # fallback pair
        order("erp", "5", "5", "K4"),
        order("sales", "SO-5", "5", "S4"),
        order("erp", "6", "6", "KQ"),  # customer quarantined (staged, not consolidated)
        order("erp", "7", "7", "NOPE"),  # unknown customer
        order("erp", "8", None, "K4"),  # no order number
        order("sales", "SO-7", "70", "S4", amount=20.0),  # missing in erp
    ]
    append_rows(c, "staging.orders", pd.DataFrame(rows))
    lines = pd.DataFrame(
        [("erp", "1", 1, 4.0), ("erp", "1", 2, 6.0), ("erp", "2", 1, 9.0), ("sales", "99", 1, 1.0)],
        columns=["source_system", "order_number", "line_number", "line_amount"],
    )
    append_rows(c, "staging.order_lines", lines)
    return c


def test_a_sequence_of_nights_ends_each_in_the_full_recomputes_findings(con):
    first, done = night(con, "r1")
    assert first.mode == "full" and "first run" in first.reason
    kinds = set(assert_identical(con)["kind"])
    assert {"status_mismatch", "amount_mismatch", "duplicate_customer"} <= kinds
    assert {"order_number_mismatch", "customer_quarantined", "unknown_customer"} <= kinds
    assert {"order_number_missing", "missing_in_erp", "line_total_mismatch"} <= kinds
    assert "lines_without_order" in kinds

    steps = {
        "nothing changed": [],
        "insert orders": [
            "INSERT INTO staging.orders (source_system, source_id, order_number, customer_ref, "
            "amount, currency, status, order_date) VALUES "
            "('erp', '10', '10', 'K4', 3, 'EUR', 'open', '2026-11-02'), "
            "('erp', '10b', '10', 'K4', 3, 'EUR', 'open', '2026-11-02'), "  # duplicate order
            "('sales', 'SO-10', '10', 'S4', 3, 'EUR', 'open', '2026-11-02')"
        ],
        "update status": ["UPDATE staging.orders SET status = 'open' WHERE source_id = 'SO-1'"],
        "update amount": ["UPDATE staging.orders SET amount = 10 WHERE source_id = 'SO-2'"],
        "update number": ["UPDATE staging.orders SET order_number = '4' WHERE source_id = 'SO-9'"],
        "number away again": [
            "UPDATE staging.orders SET order_number = '44' WHERE source_id = 'SO-9'"
        ],
        "delete orders": ["DELETE FROM staging.orders WHERE source_id IN ('2', '10b')"],
        "lines change": [
            "UPDATE staging.order_lines SET line_amount = 5 WHERE order_number = '1' "
            "AND line_number = 1",
            "DELETE FROM staging.order_lines WHERE order_number = '99'",
        ],
        "merge G2 into G1": [
            "UPDATE mdm.customer_xref SET golden_id = 'G1' WHERE golden_id = 'G2'",
            "DELETE FROM mdm.golden_customers WHERE golden_id = 'G2'",
        ],
        "split S3 out again": [
            "UPDATE mdm.customer_xref SET golden_id = 'G2' WHERE source_id IN ('K3', 'S3')",
            "INSERT INTO mdm.golden_customers (golden_id, erp_customer_number) VALUES ('G2', 'K3')",
        ],
        "quarantine K4": ["DELETE FROM mdm.customer_xref WHERE source_id = 'K4'"],
        "K4 back, unknown NOPE staged": [
            "INSERT INTO mdm.customer_xref (source_system, source_id, golden_id) "
            "VALUES ('erp', 'K4', 'G4')",
            "INSERT INTO staging.customers (source_system, source_id) VALUES ('erp', 'NOPE')",
        ],
        "ERP number of G1 changes": [
            "UPDATE mdm.golden_customers SET erp_customer_number = 'K2' WHERE golden_id = 'G1'"
        ],
        "a sales-only customer joins G4": [
            "INSERT INTO mdm.customer_xref (source_system, source_id, golden_id) "
            "VALUES ('crm', 'C1', 'G4')"
        ],
        "mapping error flagged in place": [
            "UPDATE staging.orders SET mapping_errors = 'duplicate_id:source_id' "
            "WHERE source_id = '5'"
        ],
    }
    for i, (step, statements) in enumerate(steps.items(), start=2):
        for sql in statements:
            con.execute(sql)
        p, done = night(con, f"r{i}")
        assert p.mode == "incremental", step
        assert not done.everything, step
        assert (done.changed == 0) == (not statements), step
        assert_identical(con)


def test_a_new_system_with_orders_reconciles_every_order(con):
    night(con, "r1")
    con.execute(
        "INSERT INTO staging.orders (source_system, source_id, order_number, customer_ref, "
        "amount, currency, status, order_date) "
        "VALUES ('shop', 'W1', '1', 'X', 10, 'EUR', 'open', '2026-11-01')"
    )
    p, done = night(con, "r2")
    assert p.mode == "incremental" and done.everything
    assert_identical(con)


def test_a_changed_tolerance_forces_a_full_recompute_that_names_it(con):
    night(con, "r1")
    looser = recon.ReconcileRules("erp", "erp", 5.0, 3)
    p, done = night(con, "r2", looser)
    assert p.mode == "full" and p.reason.endswith("reconcile")
    assert done.differences is None  # a change of meaning is not compared
    assert "amount_mismatch" not in assert_identical(con, looser)["kind"].tolist()
    p, _ = night(con, "r3", looser, sources=["erp", "sales", "shop"])
    assert p.mode == "full" and p.reason.endswith("order_sources")


def test_a_full_refresh_compares_and_names_a_difference(con):
    night(con, "r1")
    p, done = night(con, "r2", full_refresh=True)
    assert p.compare and done.differences == {}
    recorded = con.execute(
        "SELECT differences FROM ops.stage_runs WHERE run_id = 'r2' AND stage = 'reconcile'"
    ).fetchone()
    assert recorded == ("{}",)
    con.execute(f"DELETE FROM {recon.TABLE} WHERE kind = 'status_mismatch'")  # state gone bad
    p, done = night(con, "r3", full_refresh=True)
    assert done.differences == {recon.TABLE: 1}
    assert_identical(con)  # and the full recompute repaired it


@pytest.mark.parametrize("seed", range(3))
def test_a_full_refresh_on_a_night_of_changes_finds_no_difference(con, seed):
    """The compared full run compares with tonight's incremental run, not last night's."""
    rng = random.Random(seed)
    night(con, "r0")
    _random_step(con, rng, 1)
    p, done = night(con, "r1", full_refresh=True)
    assert p.compare and done.differences == {}
    assert_identical(con)


def test_a_failed_night_leaves_the_last_good_state(con, monkeypatch):
    night(con, "r1")
    con.execute("UPDATE staging.orders SET status = 'x' WHERE source_id = '5'")

    def broken(*_args, **_kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(recon.changes, "update_state", broken)
    with pytest.raises(RuntimeError):
        night(con, "r2")
    monkeypatch.undo()
    assert con.execute("SELECT count(*) FROM ops.stage_runs WHERE run_id = 'r2'").fetchone() == (0,)
    p, done = night(con, "r3")
    assert p.mode == "incremental" and done.changed > 0
    assert_identical(con)


def _stamp(serial: int, rng: random.Random) -> dict:
    """What staging writes with a row it (re)stages: a new raw hash and its run."""
    return {"raw_hash": rng.randrange(1, 2**62), "run_id": f"s{serial}"}


def _random_step(con, rng: random.Random, serial: int, stamped: bool = False) -> None:
    """A random night of changes: inserts, updates, deletions, re-pointed customers. With
    `stamped`, rows are written as staging and the consolidation write them: a (re)staged
    row with a new raw hash and the night's run, golden rows rebuilt (new run) on both sides
    of a record that moves — and, now and then, a duplicate-id flag set in place."""
    stamp = (lambda: _stamp(serial, rng)) if stamped else dict
    ids = [r[0] for r in con.execute("SELECT rowid FROM staging.orders").fetchall()]
    numbers = [str(rng.randrange(40)) for _ in range(6)]
    customers = ["K1", "K2", "K3", "K4", "KQ", "NOPE", None]
    sales_customers = ["S1", "S3", "S4", "SX"]
    for k in range(rng.randrange(1, 5)):
        system = rng.choice(["erp", "sales"])
        cust = rng.choice(customers if system == "erp" else sales_customers)
        number = rng.choice([*numbers, None])
        day = f"2026-11-{rng.randrange(1, 9):02d}"
        amount = rng.choice([10.0, 20.0, 50.0, None])
        row = {"source_system": system, "source_id": f"N{serial}-{k}", "order_number": number,
               "customer_ref": cust, "amount": amount, "currency": "EUR",
               "status": rng.choice(["open", "done"]), "order_date": day} | stamp()  # fmt: skip
        con.execute(
            f"INSERT INTO staging.orders ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    for rid in rng.sample(ids, min(len(ids), rng.randrange(0, 4))):
        column, value = rng.choice(
            [
                ("status", rng.choice(["open", "done", None])),
                ("amount", rng.choice([10.0, 20.0, 50.0, 50.004])),
                ("order_number", rng.choice([*numbers, None])),
                ("order_date", f"2026-11-{rng.randrange(1, 9):02d}"),
            ]
        )
        sets = {column: value} | stamp()
        con.execute(
            f"UPDATE staging.orders SET {', '.join(f'{c} = ?' for c in sets)} WHERE rowid = ?",
            [*sets.values(), rid],
        )
    for rid in rng.sample(ids, min(len(ids), rng.randrange(0, 3))):
        con.execute("DELETE FROM staging.orders WHERE rowid = ?", [rid])
    if stamped and rng.random() < 0.2:  # staging flags a duplicate id in place (no new run)
        con.execute(
            "UPDATE staging.orders SET mapping_errors = 'duplicate_id:source_id' WHERE rowid = ?",
            [rng.choice(ids)],
        )
    if rng.random() < 0.5:  # a customer moves to another golden customer (merge or split)
        who = rng.choice(["K2", "S1", "K3", "S3", "S4", "SX"])
        to = rng.choice(["G1", "G2", "G4", f"G{serial}"])
        before = con.execute(
            "SELECT golden_id FROM mdm.customer_xref WHERE source_id = ?", [who]
        ).fetchall()
        con.execute("DELETE FROM mdm.customer_xref WHERE source_id = ?", [who])
        if rng.random() < 0.8:  # else: quarantined
            system = "erp" if who.startswith("K") else "sales"
            con.execute(
                "INSERT INTO mdm.customer_xref (source_system, source_id, golden_id) "
                "VALUES (?, ?, ?)",
                [system, who, to],
            )
        if stamped:  # the consolidation rebuilds the golden rows on both sides
            con.execute(
                "INSERT INTO mdm.golden_customers (golden_id) SELECT ? WHERE NOT EXISTS "
                "(SELECT 1 FROM mdm.golden_customers WHERE golden_id = ?)",
                [to, to],
            )
            con.execute(
                "UPDATE mdm.golden_customers SET run_id = ? WHERE golden_id IN (SELECT unnest(?))",
                [f"c{serial}", [to, *(g for (g,) in before)]],
            )
    if rng.random() < 0.3:
        number = rng.choice(numbers)
        row = {"source_system": rng.choice(["erp", "sales"]), "order_number": number,
               "line_amount": rng.choice([5.0, 10.0, None])} | stamp()  # fmt: skip
        con.execute(
            f"INSERT INTO staging.order_lines ({', '.join(row)}) "
            f"VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    if rng.random() < 0.2:
        con.execute(
            "UPDATE mdm.golden_customers SET erp_customer_number = ?, run_id = ? "
            "WHERE golden_id = 'G1'",
            [rng.choice(["K1", "K2"]), f"c{serial}" if stamped else None],
        )


@pytest.mark.parametrize("seed", range(3))
def test_random_nights_end_each_in_the_full_recomputes_findings(con, seed):
    rng = random.Random(seed)
    con.execute("INSERT INTO staging.customers (source_system, source_id) VALUES ('sales', 'SX')")
    night(con, "r0")
    for serial in range(1, 13):
        _random_step(con, rng, serial)
        p, done = night(con, f"r{serial}")
        assert p.mode == "incremental"
        assert_identical(con)


@pytest.mark.parametrize("seed", range(3))
def test_random_nights_of_staged_rows_end_each_in_the_full_recomputes_findings(con, seed):
    """Rows with raw hashes and runs: the candidates are the rows of runs not seen yet, the
    rest proven unchanged by the aggregates (else compared in full) — equal either way."""
    rng = random.Random(seed)
    con.execute("INSERT INTO staging.customers (source_system, source_id) VALUES ('sales', 'SX')")
    for table in ("staging.orders", "staging.order_lines", "staging.customers"):
        con.execute(
            f"UPDATE {table} SET raw_hash = (hash(rowid, '{table}') >> 2)::BIGINT, run_id = 's0'"
        )
    con.execute("UPDATE mdm.golden_customers SET run_id = 'c0'")
    night(con, "r0")
    fast = 0
    for serial in range(1, 13):
        _random_step(con, rng, serial, stamped=True)
        p, done = night(con, f"r{serial}")
        assert p.mode == "incremental"
        fast += not done.compared_in_full
        assert_identical(con)
    assert fast > 0  # some nights proved every part from its candidates alone


def test_staged_rows_restaged_as_staging_does_are_found_without_a_full_comparison(con):
    """A restaged order (new raw hash, new run) and a rebuilt golden row are the only rows
    read besides the aggregates; a deleted order makes its part be compared in full."""
    for table in ("staging.orders", "staging.order_lines", "staging.customers"):
        con.execute(f"UPDATE {table} SET raw_hash = (hash(rowid) >> 2)::BIGINT, run_id = 's0'")
    con.execute("UPDATE mdm.golden_customers SET run_id = 'c0'")
    night(con, "r0")
    _, done = night(con, "r1")
    assert done.changed == 0 and done.reconciled == 0 and done.compared_in_full == ()
    con.execute(
        "UPDATE staging.orders SET status = 'done', raw_hash = 7, run_id = 's2' "
        "WHERE source_id = '1'"
    )
    con.execute(
        "UPDATE mdm.golden_customers SET erp_customer_number = 'K2', run_id = 'c2' "
        "WHERE golden_id = 'G1'"
    )
    _, done = night(con, "r2")
    assert done.compared_in_full == () and done.changed == 4  # old and new of each
    assert_identical(con)
    con.execute("DELETE FROM staging.orders WHERE source_id = 'SO-5'")
    _, done = night(con, "r3")
    assert done.compared_in_full == ("order",) and done.changed == 1
    assert_identical(con)

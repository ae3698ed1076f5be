"""Which orders' findings can differ from the last reconciliation's.

The reconciliation keeps what it read last time, as hashes (`recon.order_state`): per staged
order its values, per order-line row its order and amount, per consolidated record its golden
customer, per golden customer its ERP customer number, per staged customer that it exists —
rows of equal state counted once (`copies`), each with the run that wrote its input row
(`run_id`) and a hash of its key (`key_hash`). Tonight's rows are compared with those; what
differs, on either side (inserted, updated, deleted), is the seed of tonight's work.

Finding what differs reads little: staging rewrites only the rows that changed, each with
the run that staged it and a new `raw_hash` (custpipe.mapping.stage), and the consolidation
rebuilds only the golden rows of clusters that changed, with its run. So the candidates are
tonight's rows of runs the state has not seen (and rows without a run or raw hash, hashed in
full), the kept rows of their keys, and the records of golden customers rebuilt or gone. One
aggregate per part (rows and the sum of their state hashes) proves that everything else is
as it was; when it does not (a row deleted, a duplicate-id flag set in place), that part is
compared in full: an exact difference either way.

Seeds: changed orders (their order ids, old and new: the number, or source_system:source_id
when numberless), changed line groups (their numbers), and the orders of every customer
whose record changed golden customer, appeared or disappeared (unknown or quarantined
customers). orders.sql relates an order to the orders of the same number (pairing across
systems, duplicates within one, the first row per number, the lines) and to the unpaired
orders of its golden customer (the fallback pairing, the systems a golden customer is in,
its ERP number). So the scope is: the seeds' order ids; the golden customers of changed
records (old and new), of changed golden rows and of every order with a seed's number; and
every numbered order of those golden customers. Findings outside it read nothing that
changed. A change of the set of systems with orders (read across every order) puts every
order in scope.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from custpipe import warehouse

STATE = "recon.order_state"


@dataclass(frozen=True)
class _Part:
    """One input of orders.sql as the state keeps it: the columns kept per row (`keys`) from
    `table` (rows where `where`), the row's `state` hash, by its raw hash (`raw_state`, for a
    staged row that has one) or by every value orders.sql reads (`content_state`), and the
    hash of its key (`key_hash`)."""

    table: str
    keys: str
    content_state: str
    key_hash: str
    raw_state: str | None = None  # None: the table has no raw hash
    where: str = "true"
    stamped: bool = True  # its rows carry the run that wrote them (run_id)

    def rows(self, candidates: str = "true", join: str = "") -> str:
        """Tonight's rows (keys, state, key_hash, run_id) where `candidates` (after `join`)."""
        run = "run_id" if self.stamped else "NULL"
        select = f"SELECT {self.keys}, {{}} AS state, {self.key_hash} AS key_hash, "
        select += f"{run}::VARCHAR AS run_id FROM {self.table} {join} "
        select += f"WHERE {self.where} AND {candidates}"
        if self.raw_state is None:
            return select.format(self.content_state)
        # two branches, so that a staged row's values are not read at all
        return (
            select.format(self.raw_state)
            + " AND raw_hash IS NOT NULL UNION ALL "
            + select.format(self.content_state)
            + " AND raw_hash IS NULL"
        )


# A staged row with a raw hash is hashed by it (its values follow from it and the mapping,
# which the raw hash includes) and by what staging changes in place (mapping_errors); a row
# without one (loaded by other means) by every value orders.sql reads. A staged customer
# counts by its key only (orders.sql reads whether it exists): `customer` differences are
# taken on keys.
_PARTS = {
    "order": _Part(
        "staging.orders",
        "source_system, source_id, order_number, customer_ref",
        "hash(source_system, source_id, order_number, customer_ref, order_date, amount, "
        "currency, status, mapping_errors)",
        "hash(source_system, source_id)",
        raw_state="hash(raw_hash, mapping_errors)",
    ),
    "lines": _Part(
        "staging.order_lines",
        "source_system, order_number",
        "hash(source_system, order_number, line_amount)",
        "hash(source_system, order_number)",
        raw_state="hash(raw_hash)",
        where="order_number IS NOT NULL",
    ),
    "customer": _Part(
        "staging.customers",
        "source_system, source_id",
        "hash(source_system, source_id)",
        "hash(source_system, source_id)",
        raw_state="hash(raw_hash)",
    ),
    "golden": _Part(
        "mdm.golden_customers",
        "golden_id",
        "hash(golden_id, erp_customer_number)",
        "hash(golden_id)",
    ),
    # not stamped (a night keeps the rows of components no change touched): candidates are
    # the records of golden customers rebuilt or gone (recon_touched), which every change of
    # membership rebuilds
    "xref": _Part(
        "mdm.customer_xref",
        "source_system, source_id, golden_id",
        "hash(source_system, source_id, golden_id)",
        "hash(source_system, source_id)",
        stamped=False,
    ),
}
STATE_SQL_TEXT = "".join(p.rows() for p in _PARTS.values())
_ORDER_ID = "coalesce(order_number, source_system || ':' || coalesce(source_id, '?'))"


@dataclass(frozen=True)
class Changes:
    """What changed since the last reconciliation (staged orders, records, golden customers,
    customers, order lines: `changed` state rows, either side), the order ids in scope
    (`scope`), whether that is every order (`everything`), and the parts compared in full
    because their aggregate did not prove the rest unchanged (`compared_in_full`)."""

    changed: int
    scope: int
    everything: bool
    compared_in_full: tuple[str, ...] = ()


_WRAP = 1 << 64  # sums of hashes are kept modulo 2^64 (a UBIGINT)
_TOTAL = "total:"  # the state row of a part's aggregate: copies = rows, state = sum of states


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _candidates(con: duckdb.DuckDBPyConnection, part: str) -> tuple[str, str]:
    """(where, join): tonight's candidate rows of a part — written by a run the state has not
    seen, or by no run; for the xref, the records of golden customers rebuilt or gone."""
    p = _PARTS[part]
    if not p.stamped:
        return "true", "SEMI JOIN recon_touched USING (golden_id)"
    seen = con.execute(
        f"SELECT DISTINCT run_id FROM {STATE} WHERE part = ? AND run_id IS NOT NULL", [part]
    ).fetchall()
    tonight = con.execute(f"SELECT DISTINCT run_id FROM {p.table}").fetchall()
    unseen = {r[0] for r in tonight} - {r[0] for r in seen}
    terms = ["run_id IS NULL"] if None in unseen else []
    runs = sorted(r for r in unseen if r is not None)
    if runs:  # a constant list: a filter of the scan, not a join after hashing every row
        terms.append(f"run_id IN ({', '.join(map(_quoted, runs))})")
    return ("(" + " OR ".join(terms) + ")" if terms else "false"), ""


def _grouped(part: str, candidates: tuple[str, str] = ("true", "")) -> str:
    p = _PARTS[part]
    return f"""SELECT {p.keys}, state, key_hash, count(*) AS copies, max(run_id) AS run_id
               FROM ({p.rows(*candidates)}) GROUP BY ALL"""


def _aggregate(con: duckdb.DuckDBPyConnection, relation: str, copies: str) -> tuple[int, int]:
    """(rows, sum of their states modulo 2^64) of `relation`."""
    n, total = con.execute(
        f"SELECT coalesce(sum({copies}), 0), coalesce(sum(state::HUGEINT * {copies}), 0) "
        f"FROM {relation}"
    ).fetchone()
    return int(n), int(total) % _WRAP


def _kept_totals(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    """Per part, (rows, sum of states) of the kept state (its total rows, else counted)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE recon_kept_totals AS
        SELECT rowid AS rid, part, copies, state FROM {STATE} WHERE part LIKE '{_TOTAL}%'""")
    rows = con.execute("SELECT part, copies, state FROM recon_kept_totals").fetchall()
    totals = {part.removeprefix(_TOTAL): (int(n), int(total)) for part, n, total in rows}
    for part in _PARTS.keys() - totals.keys():
        totals[part] = _aggregate(con, f"(FROM {STATE} WHERE part = '{part}')", "copies")
    return totals


def _empty(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    return con.execute(f"SELECT NOT EXISTS (FROM {relation})").fetchone()[0]


def _diff(con: duckdb.DuckDBPyConnection, part: str, kept: tuple[int, int]) -> bool:
    """Temporary tables recon_new_<part> (tonight's candidate rows, grouped by state),
    recon_old_<part> (the kept rows of their keys, and for the xref of golden customers
    rebuilt or gone) and recon_changed_<part> (the rows of either side without an equal row
    on the other; for customers, the keys on one side only); recon_total_<part>: tonight's
    aggregate. Returns False when the part had to be compared in full (tonight's aggregate
    was not the kept one with the candidates swapped)."""
    p = _PARTS[part]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE recon_new_{part} AS "
        + _grouped(part, _candidates(con, part))
    )
    kept_rows = f"SELECT rowid AS rid, {p.keys}, state, key_hash, copies, run_id FROM {STATE}"
    # the xref's kept rows are those of golden customers rebuilt or gone: a record that
    # moves is rebuilt on both sides (anything else shows in the aggregate)
    by, relation = (
        ("key_hash", f"recon_new_{part}") if p.stamped else ("golden_id", "recon_touched")
    )
    if _empty(con, relation):
        con.execute(f"CREATE OR REPLACE TEMP TABLE recon_old_{part} AS {kept_rows} LIMIT 0")
    else:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE recon_old_{part} AS
            {kept_rows} SEMI JOIN {relation} USING ({by}) WHERE part = '{part}'""")
    now = _aggregate(con, f"({p.rows()})", "1")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE recon_total_{part} AS "
        f"SELECT {now[0]}::BIGINT AS copies, {now[1]}::UBIGINT AS state"
    )
    new = _aggregate(con, f"recon_new_{part}", "copies")
    gone = _aggregate(con, f"recon_old_{part}", "copies")
    exact = now == (kept[0] - gone[0] + new[0], (kept[1] - gone[1] + new[1]) % _WRAP)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE recon_cand_{part} AS SELECT {p.keys} FROM recon_new_{part}"
    )
    if not exact:  # something outside the candidates changed: compare every row
        con.execute(f"CREATE OR REPLACE TEMP TABLE recon_new_{part} AS {_grouped(part)}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE recon_old_{part} AS {kept_rows} WHERE part = '{part}'"
        )
    if part == "customer":  # whether a record exists, not its values
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE recon_changed_{part} AS
            (SELECT {p.keys} FROM recon_old_{part} EXCEPT SELECT {p.keys} FROM recon_new_{part})
            UNION ALL
            (SELECT {p.keys} FROM recon_new_{part} EXCEPT SELECT {p.keys} FROM recon_old_{part})""")
        return exact
    same = "x.key_hash = y.key_hash AND x.state = y.state AND x.copies = y.copies"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE recon_changed_{part} AS
        SELECT {p.keys} FROM recon_old_{part} x
        WHERE NOT EXISTS (SELECT 1 FROM recon_new_{part} y WHERE {same})
        UNION ALL
        SELECT {p.keys} FROM recon_new_{part} x
        WHERE NOT EXISTS (SELECT 1 FROM recon_old_{part} y WHERE {same})""")
    return exact


def _order_systems(con: duckdb.DuckDBPyConnection, relation: str, sor: str | None) -> set:
    rows = con.execute(
        f"SELECT DISTINCT source_system FROM {relation} "
        "WHERE source_system <> ? AND order_number IS NOT NULL",
        [sor],
    ).fetchall()
    return {r[0] for r in rows}


def affected_orders(
    con: duckdb.DuckDBPyConnection, system_of_record: str | None, scope: str
) -> Changes:
    """Compare tonight's inputs with the last reconciliation's state and put the order ids
    whose findings can differ in temporary table `scope` (order_id)."""
    kept = _kept_totals(con)
    full = [
        part
        for part in ("order", "lines", "customer", "golden")
        if not _diff(con, part, kept[part])
    ]
    con.execute("""
        CREATE OR REPLACE TEMP TABLE recon_touched AS
        SELECT golden_id FROM recon_cand_golden UNION SELECT golden_id FROM recon_changed_golden""")
    if not _diff(con, "xref", kept["xref"]):
        full.append("xref")
    changed = sum(
        con.execute(f"SELECT count(*) FROM recon_changed_{part}").fetchone()[0] for part in _PARTS
    )
    seen = f"(SELECT * FROM {STATE} WHERE part = 'order')"
    everything = _order_systems(con, "staging.orders", system_of_record) != _order_systems(
        con, seen, system_of_record
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE recon_seeds AS
        WITH customers AS (  -- records that changed golden customer, appeared or vanished
            SELECT source_system, source_id FROM recon_changed_xref
            UNION SELECT source_system, source_id FROM recon_changed_customer
            UNION SELECT source_system, customer_ref FROM recon_changed_order
        )
        SELECT {_ORDER_ID} AS order_id FROM recon_changed_order
        UNION SELECT order_number FROM recon_changed_lines
        UNION SELECT {_ORDER_ID} FROM staging.orders o SEMI JOIN customers c
          ON c.source_system = o.source_system AND c.source_id = o.customer_ref
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {scope} AS
        WITH goldens AS (
            SELECT golden_id FROM recon_changed_xref
            UNION SELECT golden_id FROM recon_changed_golden
            UNION SELECT x.golden_id
            FROM (SELECT source_system, customer_ref FROM staging.orders
                  SEMI JOIN recon_seeds ON order_number = order_id) o
            JOIN mdm.customer_xref x
              ON x.source_system = o.source_system AND x.source_id = o.customer_ref
            UNION SELECT x.golden_id FROM recon_changed_order o JOIN mdm.customer_xref x
              ON x.source_system = o.source_system AND x.source_id = o.customer_ref
        ),
        members AS (SELECT source_system, source_id FROM mdm.customer_xref
                    SEMI JOIN goldens USING (golden_id))
        SELECT order_id FROM recon_seeds
        UNION
        SELECT o.order_number FROM staging.orders o SEMI JOIN members m
          ON m.source_system = o.source_system AND m.source_id = o.customer_ref
        WHERE o.order_number IS NOT NULL
    """)
    (size,) = con.execute(f"SELECT count(*) FROM {scope}").fetchone()
    return Changes(changed, int(size), everything, tuple(full))


def update_state(con: duckdb.DuckDBPyConnection) -> None:
    """Make the kept state tonight's: kept rows without an equal candidate (same state,
    copies and run) are replaced by the candidates without an equal kept row, and the
    totals by tonight's."""
    same = (
        "x.key_hash = y.key_hash AND x.state = y.state AND x.copies = y.copies "
        "AND x.run_id IS NOT DISTINCT FROM y.run_id"
    )
    con.execute("CREATE OR REPLACE TEMP TABLE recon_gone AS " + " UNION ALL ".join(
        f"SELECT rid FROM recon_old_{part} x "
        f"WHERE NOT EXISTS (SELECT 1 FROM recon_new_{part} y WHERE {same})"
        for part in _PARTS
    ))  # fmt: skip
    added = " UNION ALL BY NAME ".join(
        f"(SELECT '{part}' AS part, * FROM recon_new_{part} x "
        f"WHERE NOT EXISTS (SELECT 1 FROM recon_old_{part} y WHERE {same}))"
        for part in _PARTS
    )
    totals = " UNION ALL ".join(
        f"SELECT '{_TOTAL}{part}' AS part, copies, state FROM recon_total_{part}" for part in _PARTS
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE recon_totals_changed AS
        SELECT rid, t.part, t.copies, t.state FROM ({totals}) t
        LEFT JOIN recon_kept_totals k USING (part)
        WHERE k.copies IS DISTINCT FROM t.copies OR k.state IS DISTINCT FROM t.state""")
    if not _empty(con, "recon_gone") or not _empty(con, "recon_totals_changed"):
        con.execute(f"""
            DELETE FROM {STATE} WHERE rowid IN (
                SELECT rid FROM recon_gone UNION ALL
                SELECT rid FROM recon_totals_changed WHERE rid IS NOT NULL)""")
    con.execute(f"INSERT INTO {STATE} BY NAME {added}")
    con.execute(f"INSERT INTO {STATE} BY NAME SELECT part, copies, state FROM recon_totals_changed")


def replace_state(con: duckdb.DuckDBPyConnection) -> None:
    """Make the kept state tonight's in full."""
    select = " UNION ALL BY NAME ".join(
        f"(SELECT '{part}' AS part, * FROM ({_grouped(part)}))" for part in _PARTS
    )
    warehouse.replace_table_from(con, STATE, select)
    for part in _PARTS:
        n, total = _aggregate(con, f"(FROM {STATE} WHERE part = '{part}')", "copies")
        con.execute(
            f"INSERT INTO {STATE} (part, copies, state) VALUES (?, ?, ?)",
            [_TOTAL + part, n, total],
        )


def drop_temporaries(con: duckdb.DuckDBPyConnection, *extra: str) -> None:
    """Drop the temporary tables of this module (and `extra` ones)."""
    kinds = ("new", "old", "changed", "cand", "total")
    names = [f"recon_{kind}_{part}" for kind in kinds for part in _PARTS]
    names += ["recon_seeds", "recon_touched", "recon_kept_totals", "recon_gone"]
    names += ["recon_totals_changed", *extra]
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")

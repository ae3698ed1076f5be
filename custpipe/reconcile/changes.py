"""Which orders' findings can differ from the last reconciliation's.

The reconciliation keeps what it read last time, as hashes (`recon.order_state`): per staged
order its values (with how many identical copies), per consolidated record its golden
customer, per golden customer its ERP customer number, per staged customer that it exists,
and per (system, order number) its order lines. Tonight's hashes are compared with those;
what differs, on either side (inserted, updated, deleted), is the seed of tonight's work.

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

# (part, key columns kept, tonight's rows with a `state` hash)
_PARTS = {
    "order": (
        "source_system, source_id, order_number, customer_ref",
        """SELECT source_system, source_id, order_number, customer_ref,
                  hash(source_system, source_id, order_number, customer_ref, order_date, amount,
                       currency, status, mapping_errors) AS state
           FROM staging.orders""",
    ),
    "xref": (
        "source_system, source_id, golden_id",
        "SELECT source_system, source_id, golden_id, hash(source_system, source_id, golden_id) "
        "AS state FROM mdm.customer_xref",
    ),
    "golden": (
        "golden_id",
        "SELECT golden_id, hash(golden_id, erp_customer_number) AS state FROM mdm.golden_customers",
    ),
    "customer": (
        "source_system, source_id",
        "SELECT source_system, source_id, hash(source_system, source_id) AS state "
        "FROM staging.customers",
    ),
    # integer sums of hashes: the same for the same lines in any order (a float sum is not)
    "lines": (
        "source_system, order_number",
        """SELECT source_system, order_number,
                  hash(source_system, order_number, count(*), sum(hash(line_amount))) AS state
           FROM staging.order_lines WHERE order_number IS NOT NULL
           GROUP BY source_system, order_number""",
    ),
}
STATE_SQL_TEXT = "".join(sql for _, sql in _PARTS.values())
_ORDER_ID = "coalesce(order_number, source_system || ':' || coalesce(source_id, '?'))"


@dataclass(frozen=True)
class Changes:
    """What changed since the last reconciliation (staged orders, records, golden customers,
    customers, line groups: `changed`), the order ids in scope (`scope`), and whether that
    is every order (`everything`)."""

    changed: int
    scope: int
    everything: bool


def read_state(con: duckdb.DuckDBPyConnection) -> None:
    """Tonight's state, one temporary table per part (rows of equal state counted once)."""
    for part, (_, sql) in _PARTS.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE recon_now_{part} AS {sql}")
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE recon_copies_{part} AS
            SELECT state, count(*) AS copies FROM recon_now_{part} GROUP BY state""")


def _diff(con: duckdb.DuckDBPyConnection, part: str) -> int:
    """Temporary table recon_changed_<part>: the rows of states whose count differs."""
    keys = _PARTS[part][0]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE recon_changed_states_{part} AS
        SELECT coalesce(n.state, s.state) AS state FROM recon_copies_{part} n
        FULL JOIN (SELECT state, copies FROM {STATE} WHERE part = '{part}') s
          ON n.state = s.state AND n.copies = s.copies
        WHERE n.state IS NULL OR s.state IS NULL""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE recon_changed_{part} AS
        SELECT {keys} FROM recon_now_{part}
        WHERE state IN (SELECT state FROM recon_changed_states_{part})
        UNION ALL
        SELECT {keys} FROM {STATE}
        WHERE part = '{part}' AND state IN (SELECT state FROM recon_changed_states_{part})""")
    (n,) = con.execute(f"SELECT count(*) FROM recon_changed_states_{part}").fetchone()
    return int(n)


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
    """Compare tonight's state (:func:`read_state`) with the last reconciliation's and put
    the order ids whose findings can differ in temporary table `scope` (order_id)."""
    changed = sum(_diff(con, part) for part in _PARTS)
    seen = f"(SELECT * FROM {STATE} WHERE part = 'order')"
    everything = _order_systems(con, "recon_now_order", system_of_record) != _order_systems(
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
        UNION SELECT {_ORDER_ID} FROM recon_now_order o WHERE EXISTS (
            SELECT 1 FROM customers c
            WHERE c.source_system = o.source_system AND c.source_id = o.customer_ref)
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {scope} AS
        WITH xref AS (SELECT source_system, source_id, golden_id FROM recon_now_xref),
        goldens AS (
            SELECT golden_id FROM recon_changed_xref
            UNION SELECT golden_id FROM recon_changed_golden
            UNION SELECT x.golden_id FROM recon_now_order o JOIN xref x
              ON x.source_system = o.source_system AND x.source_id = o.customer_ref
            WHERE o.order_number IN (SELECT order_id FROM recon_seeds)
            UNION SELECT x.golden_id FROM recon_changed_order o JOIN xref x
              ON x.source_system = o.source_system AND x.source_id = o.customer_ref
        ),
        members AS (SELECT source_system, source_id FROM xref
                    WHERE golden_id IN (SELECT golden_id FROM goldens))
        SELECT order_id FROM recon_seeds
        UNION
        SELECT o.order_number FROM recon_now_order o
        WHERE o.order_number IS NOT NULL
          AND EXISTS (SELECT 1 FROM members m
                      WHERE m.source_system = o.source_system AND m.source_id = o.customer_ref)
    """)
    (size,) = con.execute(f"SELECT count(*) FROM {scope}").fetchone()
    return Changes(changed, int(size), everything)


def _state_rows(part: str, where: str = "") -> str:
    keys = _PARTS[part][0]
    return f"""
        SELECT '{part}' AS part, n.state, c.copies, {keys}
        FROM recon_now_{part} n JOIN recon_copies_{part} c USING (state) {where}
        QUALIFY row_number() OVER (PARTITION BY n.state) = 1"""


def update_state(con: duckdb.DuckDBPyConnection) -> None:
    """Make the kept state tonight's: the rows of every changed state are replaced."""
    con.execute("CREATE OR REPLACE TEMP TABLE recon_changed_all (part VARCHAR, state UBIGINT)")
    for part in _PARTS:
        con.execute(f"""
            INSERT INTO recon_changed_all
            SELECT '{part}', state FROM recon_changed_states_{part}""")
    con.execute(f"""
        DELETE FROM {STATE} t WHERE EXISTS (
            SELECT 1 FROM recon_changed_all c WHERE c.part = t.part AND c.state = t.state)""")
    for part in _PARTS:
        where = f"WHERE n.state IN (SELECT state FROM recon_changed_states_{part})"
        con.execute(f"INSERT INTO {STATE} BY NAME {_state_rows(part, where)}")


def replace_state(con: duckdb.DuckDBPyConnection) -> None:
    """Make the kept state tonight's in full."""
    select = " UNION ALL BY NAME ".join(f"({_state_rows(part)})" for part in _PARTS)
    warehouse.replace_table_from(con, STATE, select)


def drop_temporaries(con: duckdb.DuckDBPyConnection, *extra: str) -> None:
    """Drop the temporary tables of this module (and `extra` ones)."""
    names = [f"recon_{kind}_{part}" for kind in ("now", "copies", "changed") for part in _PARTS]
    names += [f"recon_changed_states_{part}" for part in _PARTS]
    names += ["recon_seeds", "recon_changed_all", *extra]
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")

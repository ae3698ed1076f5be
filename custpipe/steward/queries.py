"""What the workbench's pages read from the warehouse: plain SQL over a read-only connection.

Functions return plain Python values (dicts, lists); the views decide what a role may see.
Record keys are written 'source_system:source_id' throughout, as in the decisions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import duckdb

from custpipe import catalogue, warehouse

#: the staged fields shown side by side for a record, in this order
RECORD_FIELDS = (
    "party_type", "name", "given_name", "family_name", "birth_date", "national_id", "tax_id",
    "email", "phone", "street", "postal_code", "city", "region", "country", "segment", "status",
)  # fmt: skip
#: order statuses that count as open work for a customer (the inbox's impact)
OPEN_ORDER_STATUSES = ("open", "in_progress")
GOLDEN_ID = re.compile(r"^G[0-9A-F]{12}$")


def pair_key(left: str, right: str) -> str:
    """An order-free key of a pair of records."""
    return "|".join(sorted((left, right)))


def group_key(golden_a: str, golden_b: str) -> tuple[str, str]:
    """The two golden IDs of a review group, in order."""
    return tuple(sorted((golden_a, golden_b)))  # type: ignore[return-value]


@dataclass
class InboxGroup:
    """Review pairs that are one decision: the records of one golden record against another's."""

    golden_a: str
    golden_b: str
    pairs: int
    best_score: float | None
    kept_apart: bool
    members_a: int
    members_b: int
    open_orders: int


@dataclass
class ReviewState:
    """The review queue with the golden record of each record, and per golden record its
    member count and open orders: all the inbox needs, read once per warehouse version."""

    pairs: list[dict]  # left, right, score, explanation, left_golden, right_golden
    members: dict[str, int]
    open_orders: dict[str, int]


def review_state(con: duckdb.DuckDBPyConnection) -> ReviewState:
    """Read the review queue and what ranks it (see `ReviewState`).

    Each step narrows by id lists (the queue's records, then their golden records) rather
    than joining whole tables: at a million records a join scans and hashes every xref row.
    """
    pairs = _records(
        con,
        """SELECT left_source_system || ':' || left_source_id AS left,
                  right_source_system || ':' || right_source_id AS right, score, explanation
           FROM mdm.match_review""",
        {},
    )
    records = sorted({p["left"] for p in pairs} | {p["right"] for p in pairs})
    golden = golden_of(con, records)
    for p in pairs:  # a record outside the xref stands for itself
        p["left_golden"] = golden.get(p["left"], p["left"])
        p["right_golden"] = golden.get(p["right"], p["right"])
    goldens = sorted({p["left_golden"] for p in pairs} | {p["right_golden"] for p in pairs})
    members = dict(
        con.execute(
            """SELECT golden_id, member_count FROM mdm.golden_customers
               WHERE golden_id IN (SELECT unnest($g::VARCHAR[]))""",
            {"g": goldens},
        ).fetchall()
    )
    orders = dict(
        con.execute(
            """
            WITH m AS (SELECT source_system, source_id, golden_id FROM mdm.customer_xref
                       WHERE golden_id IN (SELECT unnest($g::VARCHAR[])))
            SELECT m.golden_id, count(*) FROM staging.orders o
            JOIN m ON m.source_system = o.source_system AND m.source_id = o.customer_ref
            WHERE o.customer_ref IN (SELECT source_id FROM m)
              AND o.status IN (SELECT unnest($statuses::VARCHAR[]))
            GROUP BY 1
            """,
            {"g": goldens, "statuses": list(OPEN_ORDER_STATUSES)},
        ).fetchall()
    )
    return ReviewState(pairs, members, orders)


def inbox(state: ReviewState, decided: set[str], limit: int = 100) -> tuple[list[InboxGroup], int]:
    """(groups by impact, total groups): the review queue grouped by the decision it really
    is, without the pairs in `decided` (pair keys a steward decided since the last run).

    Impact: open orders of both golden records, then their members, then the best score.
    """
    grouped: dict[tuple[str, str], list[dict]] = {}
    for p in state.pairs:
        if pair_key(p["left"], p["right"]) not in decided:
            grouped.setdefault(group_key(p["left_golden"], p["right_golden"]), []).append(p)
    groups = []
    for (a, b), pairs in grouped.items():
        scores = [p["score"] for p in pairs if p["score"] is not None]
        groups.append(
            InboxGroup(
                a,
                b,
                len(pairs),
                max(scores) if scores else None,
                any('"kept_apart"' in (p["explanation"] or "") for p in pairs),
                state.members.get(a, 1),
                state.members.get(b, 1),
                state.open_orders.get(a, 0) + state.open_orders.get(b, 0),
            )
        )
    groups.sort(
        key=lambda g: (
            -g.open_orders,
            -(g.members_a + g.members_b),
            -(g.best_score if g.best_score is not None else 2.0),  # kept apart first
            g.golden_a,
            g.golden_b,
        )
    )
    return groups[:limit], len(groups)


@dataclass
class Bar:
    """One step of a match-weight waterfall."""

    label: str
    level: str
    weight: float
    start: float  # the running total before this step


@dataclass
class ReviewPair:
    left: str
    right: str
    score: float | None
    kept_apart: str | None
    linked_by: str | None
    bars: list[Bar] = field(default_factory=list)
    total_weight: float | None = None


def match_weight(probability: float) -> float:
    """log2 of the odds of `probability` (bounded for 0 and 1)."""
    p = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log2(p / (1 - p))


def waterfall(score: float | None, explanation: dict) -> tuple[list[Bar], float | None]:
    """The steps from the prior to the pair's match weight: the prior (the score's weight less
    the fields'), then each compared field's weight; (bars, total weight)."""
    fields = [(k, v) for k, v in explanation.items() if isinstance(v, dict) and "weight" in v]
    field_sum = sum(float(v["weight"]) for _, v in fields)
    steps: list[tuple[str, str, float]] = []
    total = None
    if score is not None:
        total = match_weight(score)
        steps.append(("prior", "chance two records match", total - field_sum))
    steps += [(k, str(v.get("level", "")), float(v["weight"])) for k, v in fields]
    bars, running = [], 0.0
    for label, level, weight in steps:
        bars.append(Bar(label, level, round(weight, 2), round(running, 2)))
        running += weight
    return bars, (round(total, 2) if total is not None else None)


def review_group(state: ReviewState, golden_a: str, golden_b: str) -> list[ReviewPair]:
    """The review pairs between two golden records (either way round), with waterfalls."""
    wanted = group_key(golden_a, golden_b)
    rows = [p for p in state.pairs if group_key(p["left_golden"], p["right_golden"]) == wanted]
    rows.sort(
        key=lambda p: (-(p["score"] if p["score"] is not None else 2.0), p["left"], p["right"])
    )
    pairs = []
    for p in rows:
        explanation = json.loads(p["explanation"]) if p["explanation"] else {}
        bars, total = waterfall(p["score"], explanation)
        pairs.append(
            ReviewPair(
                p["left"],
                p["right"],
                p["score"],
                explanation.get("kept_apart"),
                explanation.get("linked_by"),
                bars,
                total,
            )
        )
    return pairs


def members(con: duckdb.DuckDBPyConnection, golden_id: str) -> list[dict]:
    """The source records of a golden record, each with its staged values, the rules that
    linked it and whether its source deleted it."""
    xref = con.execute(
        """SELECT source_system, source_id, match_rule FROM mdm.customer_xref
           WHERE golden_id = $id ORDER BY 1, 2""",
        {"id": golden_id},
    ).fetchall()
    staged = staged_records(con, [(system, sid) for system, sid, _ in xref])
    out = []
    for system, sid, rule in xref:
        row = staged.get((system, sid), {})
        out.append(
            {"record": f"{system}:{sid}", "match_rule": rule, "is_deleted": row.get("is_deleted")}
            | {f: row.get(f) for f in RECORD_FIELDS}
        )
    return out


def staged_records(
    con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], dict]:
    """(source_system, source_id) -> its staged row, for a few records.

    One equality per record, so DuckDB skips the row groups whose id range cannot hold it
    (an IN list or a join would read every staged row).
    """
    if not keys:
        return {}
    where = " OR ".join("(source_system = ? AND source_id = ?)" for _ in keys)
    columns = ", ".join(("source_system", "source_id", "is_deleted", *RECORD_FIELDS))
    cursor = con.execute(
        f"SELECT {columns} FROM staging.customers WHERE {where}",
        [v for key in keys for v in key],
    )
    names = [d[0] for d in cursor.description]
    out: dict[tuple[str, str], dict] = {}
    for row in cursor.fetchall():
        record = dict(zip(names, row, strict=True))
        out.setdefault((record["source_system"], record["source_id"]), record)
    return out


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def golden(con: duckdb.DuckDBPyConnection, golden_id: str) -> dict | None:
    """The golden record, its attributes with the record that supplied each, or None."""
    rows = _records(
        con, "SELECT * FROM mdm.golden_customers WHERE golden_id = $id", {"id": golden_id}
    )
    if not rows:
        return None
    row = rows[0]
    supplied = json.loads(row.get("attribute_sources") or "{}")
    row["attributes"] = [
        {"name": name, "value": row.get(name), "source": supplied.get(name)}
        for name in catalogue.golden_attributes()
    ]
    return row


def history(con: duckdb.DuckDBPyConnection, golden_id: str) -> list[dict]:
    """The ID's events (created, merged, split, retired) with the business date of each run."""
    return _records(
        con,
        """
        SELECT h.event, h.golden_id, h.related_golden_id, h.members, h.recorded_at,
               (SELECT max(business_date) FROM ops.stage_runs r WHERE r.run_id = h.run_id)
                   AS business_date
        FROM mdm.golden_id_history h
        WHERE h.golden_id = $id OR h.related_golden_id = $id
        ORDER BY h.recorded_at, h.event
        """,
        {"id": golden_id},
    )


def search_kinds(query: str) -> tuple[str, ...]:
    """What a search text may be, most likely first: golden_id, record, email, phone,
    tax_id, source_id or name (an id of digits may be a phone, a tax ID or a source id)."""
    text = query.strip()
    compact = re.sub(r"[\s().-]", "", text)
    digits = sum(c.isdigit() for c in compact)
    if GOLDEN_ID.match(text.upper()):
        return ("golden_id",)
    if "@" in text:
        return ("email",)
    if ":" in text:
        return ("record",)
    if compact.startswith("+") and digits >= 6:
        return ("phone",)
    if compact.isdigit() and digits >= 6:
        return ("phone", "tax_id", "source_id")
    if digits >= 4 and compact.isalnum() and len(compact) >= 8:
        return ("tax_id", "source_id")
    return ("name", "source_id")


#: the search kinds that look at values (stewards only) and those that name ids
VALUE_KINDS = ("name", "email", "phone", "tax_id")
ID_KINDS = ("golden_id", "record", "source_id")


def search(con: duckdb.DuckDBPyConnection, query: str, kind: str, limit: int = 50) -> list[dict]:
    """Golden records whose golden ID, member record id or value matches `query`."""
    text = query.strip()
    if not text:
        return []
    sources = {
        "golden_id": "SELECT golden_id FROM mdm.golden_customers WHERE golden_id = upper($q)",
        "record": """SELECT golden_id FROM mdm.customer_xref
                     WHERE source_system || ':' || source_id = $q""",
        "source_id": "SELECT golden_id FROM mdm.customer_xref WHERE source_id = $q",
        "email": """SELECT x.golden_id FROM staging.customers s JOIN mdm.customer_xref x
                    USING (source_system, source_id) WHERE lower(s.email) = lower($q)""",
        # valid values are staged compact (tax IDs upper case, phones E.164): compared as
        # they are; only the few invalid ones are normalised row by row (~3x faster at 1M)
        "tax_id": """SELECT x.golden_id FROM staging.customers s JOIN mdm.customer_xref x
                     USING (source_system, source_id)
                     WHERE CASE WHEN s.tax_id_valid
                                THEN s.tax_id = upper(regexp_replace($q, '[\\s.-]', '', 'g'))
                                ELSE upper(regexp_replace(s.tax_id, '[\\s.-]', '', 'g'))
                                     = upper(regexp_replace($q, '[\\s.-]', '', 'g')) END""",
        "phone": """SELECT x.golden_id FROM staging.customers s JOIN mdm.customer_xref x
                    USING (source_system, source_id)
                    WHERE length(ltrim(regexp_replace($q, '\\D', '', 'g'), '0')) >= 6
                      AND CASE WHEN s.phone_valid  -- a national form's trunk 0 dropped
                               THEN s.phone
                                    LIKE '%' || ltrim(regexp_replace($q, '\\D', '', 'g'), '0')
                               ELSE regexp_replace(s.phone, '\\D', '', 'g')
                                    LIKE '%' || ltrim(regexp_replace($q, '\\D', '', 'g'), '0')
                          END""",
        "name": """SELECT golden_id FROM mdm.golden_customers
                   WHERE name ILIKE '%' || $q || '%'""",
    }
    if kind not in sources:
        raise ValueError(f"unknown search {kind!r}")
    return _records(
        con,
        f"""
        WITH found AS ({sources[kind]})
        SELECT g.golden_id, g.name, g.country, g.party_type, g.member_count, g.sources, g.status
        FROM mdm.golden_customers g WHERE g.golden_id IN (SELECT golden_id FROM found)
        ORDER BY g.golden_id LIMIT $limit
        """,
        {"q": text, "limit": limit},
    )


def golden_of(con: duckdb.DuckDBPyConnection, records: list[str]) -> dict[str, str]:
    """record ('system:id') -> its golden ID, for the records that have one."""
    if not records:
        return {}
    wanted = set(records)
    rows = con.execute(
        """SELECT source_system, source_id, golden_id FROM mdm.customer_xref
           WHERE source_id IN (SELECT unnest($ids::VARCHAR[]))""",
        {"ids": sorted({r.partition(":")[2] for r in records})},
    ).fetchall()
    return {f"{s}:{i}": g for s, i, g in rows if f"{s}:{i}" in wanted}





def quarantine_summary(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Records held back by the last validation of each source: per source and rule, how many,
    the severity and the rule's description (what is wrong and how to fix it)."""
    return _records(
        con,
        f"""
        SELECT source_system, rule, any_value(severity) AS severity,
               any_value(description) AS description, count(DISTINCT source_id) AS records
        FROM ({warehouse.CURRENT_QUARANTINE}) GROUP BY 1, 2 ORDER BY 1, records DESC, 2
        """,
        {},
    )


def quarantined_records(
    con: duckdb.DuckDBPyConnection, source: str, limit: int | None = 500
) -> list[dict]:
    """The held-back records of one source, each with every rule it failed."""
    return _records(
        con,
        f"""
        SELECT q.source_id, string_agg(q.rule, ', ' ORDER BY q.rule) AS rules,
               any_value(s.name) AS name
        FROM ({warehouse.CURRENT_QUARANTINE}) q
        LEFT JOIN staging.customers s USING (source_system, source_id)
        WHERE q.source_system = $source
        GROUP BY q.source_id ORDER BY q.source_id
        {"LIMIT " + str(int(limit)) if limit else ""}
        """,
        {"source": source},
    )


def quarantine_export(con: duckdb.DuckDBPyConnection, source: str) -> list[dict]:
    """One row per held-back record and rule of `source`: ids, rule, severity and the fix —
    what the owners of that system need, without customer values."""
    return _records(
        con,
        f"""SELECT source_system, source_id, rule, severity, description AS what_to_fix
            FROM ({warehouse.CURRENT_QUARANTINE}) WHERE source_system = $source
            ORDER BY source_id, rule""",
        {"source": source},
    )


def last_run(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The business date and time of the newest consolidation, for page headers."""
    rows = _records(
        con,
        """SELECT business_date, recorded_at FROM ops.stage_runs WHERE stage = 'consolidate'
           ORDER BY recorded_at DESC LIMIT 1""",
        {},
    )
    return rows[0] if rows else None

"""Definite links on strong identifiers, and clustering of all links into components.

Each rule names a key built from standardised columns; records that share a non-null key
are linked whatever the model says. Everything weaker (names, addresses, phones) is left
to the probabilistic model (`custpipe.matching.model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from custpipe import warehouse
from custpipe.matching.workspace import MatchWorkspace, staged_rows

if TYPE_CHECKING:
    from custpipe.spark.runners import SparkRunner


@dataclass(frozen=True)
class LinkRule:
    """Records sharing `key` (SQL over staged columns), among those where `when` holds, link."""

    name: str
    key: str
    when: str = "TRUE"


ROLE_ADDRESS = (
    r"^(info|contact|kontakt|sales|vertrieb|service|support|office|buero|mail|post|admin|"
    r"hello|enquiries|inquiries|accounts|billing|buchhaltung|team|orders|bestellung)@"
)
DEFAULT_RULES: tuple[LinkRule, ...] = (
    LinkRule("same_tax_id", "country || ':' || tax_id", "tax_id_valid AND party_type = 'company'"),
    # a role address (info@, contact@ …) is shared by different firms of one name: not evidence
    LinkRule("same_email", "email", f"email_valid AND NOT regexp_matches(email, '{ROLE_ADDRESS}')"),
)


def build_edges(ws: MatchWorkspace, rules: tuple[LinkRule, ...] = DEFAULT_RULES) -> int:
    """From `ws.nodes` (their staged columns) make `ws.edges` (a, b, rule); return its size."""
    rows = staged_rows(ws)
    parts = [
        f"""SELECT node, min(node) OVER (PARTITION BY k) AS other, '{r.name}' AS rule
            FROM (SELECT node, ({r.key}) AS k FROM {rows} WHERE {r.when}) WHERE k IS NOT NULL"""
        for r in rules
    ]
    ws.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.edges} AS
        SELECT node AS a, other AS b, rule FROM ({" UNION ALL ".join(parts)}) WHERE node <> other
    """)
    return ws.con.execute(f"SELECT count(*) FROM {ws.edges}").fetchone()[0]


def connected_components(
    ws: MatchWorkspace,
    scope: str | None = None,
    max_rounds: int = 100,
    spark: SparkRunner | None = None,
) -> int:
    """Make `ws.labels` (node, label): each node of `ws.nodes` (or only of `scope` (node), a
    set of whole components) labelled with the smallest node of its component over
    `ws.edges`; return the rounds it took. `spark` (engine: spark): Splink's connected
    components on Spark (custpipe.spark.clustering), the same labels."""
    con = ws.con
    nodes = ws.nodes if scope is None else scope
    edges = (
        ws.edges if scope is None else f"(SELECT * FROM {ws.edges} SEMI JOIN {scope} ON a = node)"
    )
    if spark is not None:
        con.complete()  # a result left partly fetched would refuse the queries below
        labels, rounds = spark.components(
            con.sql(f"SELECT node FROM {nodes}").to_arrow_table(),
            con.sql(f"SELECT a, b FROM {edges}").to_arrow_table(),
        )
        with warehouse.registered(con, "spark_labels", labels):
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {ws.labels} AS
                SELECT n.node, s.label::BIGINT AS label
                FROM {nodes} n JOIN spark_labels s ON s.node = n.node
            """)
        (labelled,) = con.execute(f"SELECT count(*) FROM {ws.labels}").fetchone()
        if (
            labelled != len(labels)
            or labelled != con.execute(f"SELECT count(*) FROM {nodes}").fetchone()[0]
        ):
            raise RuntimeError(
                f"clustering on Spark labelled {len(labels):,} records of which {labelled:,} "
                "are tonight's: its result does not match its input (rerun with engine: duckdb)"
            )
        return rounds
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.undirected} AS
        SELECT a, b FROM {edges} UNION SELECT b, a FROM {edges};
        CREATE OR REPLACE TEMP TABLE {ws.labels} AS SELECT node, node AS label FROM {nodes};
    """)
    for rounds in range(1, max_rounds + 1):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {ws.next_labels} AS
            WITH spread AS (
                SELECT l.node, least(l.label, coalesce(min(n.label), l.label)) AS label
                FROM {ws.labels} l
                LEFT JOIN {ws.undirected} u ON u.a = l.node
                LEFT JOIN {ws.labels} n ON n.node = u.b
                GROUP BY l.node, l.label
            )
            SELECT s.node, least(s.label, j.label) AS label   -- pointer jumping
            FROM spread s JOIN spread j ON j.node = s.label
        """)
        changed = con.execute(f"""
            SELECT count(*) FROM {ws.next_labels} n JOIN {ws.labels} l USING (node)
            WHERE n.label <> l.label
        """).fetchone()[0]
        con.execute(f"CREATE OR REPLACE TEMP TABLE {ws.labels} AS SELECT * FROM {ws.next_labels}")
        if changed == 0:
            return rounds
    raise RuntimeError(f"clustering did not converge in {max_rounds} rounds")

"""Survivorship: which source record supplies each golden attribute, by configurable rules.

Each attribute is ranked by an ordered list of rules; the first non-null value of the best
ranked record wins, and the winner's `source_system:source_id` is recorded as provenance.

- `valid`    valid values before invalid ones (attributes with a validity flag only)
- `trust`    the more trusted source first (`trust` in the source's config; lower wins)
- `recent`   the most recently updated record first (`source_updated_at`)
- `complete` the record with the most golden attributes filled in first
- `frequent` the value most records of the cluster agree on first

After the configured rules, ties always fall to the record's standing preference: trust,
active before deleted, most recent, then source and id, so the result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from custpipe import catalogue

RULES = ("valid", "trust", "recent", "complete", "frequent")
DEFAULT_RULES: tuple[str, ...] = ("valid", "trust")  # then the standing preference

# attribute -> the validity flag the `valid` rule reads (None: the attribute has none),
# declared with each field in custpipe/catalogue.py
GOLDEN_ATTRIBUTES: dict[str, str | None] = catalogue.golden_attributes()

#: the staged columns survivorship reads (besides `node`): what goes to Spark (engine: spark)
SURVIVORSHIP_COLUMNS: tuple[str, ...] = (
    "source_system",
    "source_id",
    "is_deleted",
    "source_updated_at",
    *GOLDEN_ATTRIBUTES,
    *dict.fromkeys(flag for flag in GOLDEN_ATTRIBUTES.values() if flag),
)

SURVIVORSHIP_SQL = (Path(__file__).parent / "survivorship.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Survivorship:
    """Rules per attribute; attributes not listed use `default`."""

    default: tuple[str, ...] = DEFAULT_RULES
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.attributes) - set(GOLDEN_ATTRIBUTES)
        if unknown:
            raise ValueError(
                f"survivorship: unknown attribute(s) {sorted(unknown)}; "
                f"golden attributes are {sorted(GOLDEN_ATTRIBUTES)}"
            )
        for name, rules in [("default", self.default), *self.attributes.items()]:
            bad = [r for r in rules if r not in RULES]
            if bad:
                raise ValueError(f"survivorship.{name}: unknown rule(s) {bad}; use {RULES}")

    def rules_for(self, attribute: str) -> tuple[str, ...]:
        """The ordered rules that rank `attribute`."""
        return self.attributes.get(attribute, self.default)


def _term(rule: str, attribute: str) -> str | None:
    flag = GOLDEN_ATTRIBUTES[attribute]
    if rule == "valid":
        return f"CASE WHEN {flag} THEN 0 ELSE 1 END" if flag else None
    if rule == "trust":
        return "trust"
    if rule == "recent":
        return "coalesce(-epoch(source_updated_at), 1e18)"
    if rule == "complete":
        return "-completeness"
    return f"-freq_{attribute}"  # frequent


def _rank(survivorship: Survivorship, attribute: str) -> str:
    terms = [_term(r, attribute) for r in survivorship.rules_for(attribute)]
    return "[" + ", ".join([t for t in terms if t] + ["pref"]) + "]::DOUBLE[]"


def survivorship_sql(
    survivorship: Survivorship, nodes: str = "nodes", labels: str = "labels", trust: str = "trust"
) -> str:
    """The golden-record query (one row per label) over the relations `nodes` (node, staged
    columns), `labels` (node, label) and `trust` (source_system, trust)."""
    attrs = ",\n    ".join(
        f"arg_min({a}, {_rank(survivorship, a)}) FILTER (WHERE {a} IS NOT NULL) AS {a}"
        for a in GOLDEN_ATTRIBUTES
    )
    sources = ", ".join(
        f"'{a}', arg_min(source_system || ':' || source_id, {_rank(survivorship, a)}) "
        f"FILTER (WHERE {a} IS NOT NULL)"
        for a in GOLDEN_ATTRIBUTES
    )
    completeness = " + ".join(f"({a} IS NOT NULL)::INT" for a in GOLDEN_ATTRIBUTES)
    frequencies = "".join(
        f",\n           count({a}) OVER (PARTITION BY l.label, {a}) AS freq_{a}"
        for a in GOLDEN_ATTRIBUTES
        if "frequent" in survivorship.rules_for(a)
    )
    return SURVIVORSHIP_SQL.format(
        attributes=attrs,
        attribute_sources=sources,
        completeness=completeness,
        frequencies=frequencies,
        nodes=nodes,
        labels=labels,
        trust=trust,
    )

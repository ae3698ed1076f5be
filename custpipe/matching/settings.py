"""Matching settings as data: blocking rules, comparisons and training rules from pipeline.yaml.

A deployment states under `matching:` which records become candidate pairs (blocking rules:
lists of match columns, optionally through a function) and how each match column is compared
(exact, Jaro-Winkler, Levenshtein, Damerau-Levenshtein, date, ID, name, with term-frequency
adjustment per column). `splink_settings` turns them into Splink settings; `train-model`
trains with them and the nightly run refuses a model file whose blocking rules or comparisons
differ from them (see `custpipe.matching.model.MatchModel.check_settings`).

Match columns are read from the standardised staged columns (see `MATCH_INPUT_SQL` in
`custpipe.matching.model`); each is listed in `MATCH_COLUMNS` with the canonical fields it is
made from. A comparison of a column no configured source maps is left out of the model, so a
deployment without tax IDs is not warned about tax IDs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

# match column -> the canonical fields it is made from (any one mapped: the column has values)
MATCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "party_type": (),  # always known (mapped, or inferred from the name parts)
    "country": (),  # always present on an accepted record
    "name_key": ("name", "given_name", "family_name"),
    "given_name": ("given_name",),
    "family_name": ("family_name",),
    "birth_date": ("birth_date",),
    "national_id": ("national_id",),
    "tax_id": ("tax_id",),
    "email": ("email",),
    "phone": ("phone",),
    "street_key": ("street",),
    "postal_code": ("postal_code",),
    "city_key": ("city",),
    "region": ("region",),
}

# blocking functions: name -> (number of int arguments, SQL of the derived column or None when
# it is computed in Python, see `custpipe.matching.model.match_input`)
BLOCKING_FUNCTIONS: dict[str, tuple[int, str | None]] = {
    "prefix": (1, "left({col}, {n})"),  # the first n characters
    "year": (0, "left({col}, 4)"),  # the year of an ISO date (birth_date)
    "soundex": (0, None),  # American Soundex of the value's letters (spaces dropped)
    "metaphone": (0, None),  # Metaphone (Lawrence Philips) of the whole value
    "dmetaphone": (0, None),  # the primary Double Metaphone code (Philips, 2000)
}
EXCLUDABLE = ("tax_id", "national_id")
METHODS = (
    "exact",
    "jaro_winkler",
    "jaro",
    "levenshtein",
    "damerau_levenshtein",
    "date",
    "id",
    "name",
)
_TERM = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([a-z_]+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_column(column: str, where: str) -> str:
    if column not in MATCH_COLUMNS:
        raise ValueError(
            f"{where}: '{column}' is not a match column; use one of {', '.join(MATCH_COLUMNS)}"
        )
    return column


def parse_term(term: str) -> tuple[str, str | None, int | None]:
    """A blocking term 'column' or 'function(column[, n])' -> (column, function, n)."""
    found = _TERM.match(str(term))
    if not found:
        raise ValueError(
            f"blocking term {term!r}: write a match column ('postal_code') or a function of one "
            f"({', '.join(f + '(column)' for f in BLOCKING_FUNCTIONS)}; prefix takes a length: "
            "'prefix(name_key, 4)')"
        )
    head, inner, number = found.groups()
    if inner is None:
        return _known_column(head, f"blocking term {term!r}"), None, None
    if head not in BLOCKING_FUNCTIONS:
        raise ValueError(
            f"blocking term {term!r}: unknown function '{head}'; use one of "
            f"{', '.join(BLOCKING_FUNCTIONS)}"
        )
    wants = BLOCKING_FUNCTIONS[head][0]
    if (number is not None) != bool(wants):
        shape = f"{head}({inner}, N)" if wants else f"{head}({inner})"
        raise ValueError(f"blocking term {term!r}: write it as '{shape}'")
    if number is not None and int(number) < 1:
        raise ValueError(f"blocking term {term!r}: the length must be at least 1")
    column = _known_column(inner, f"blocking term {term!r}")
    if head == "year" and column != "birth_date":
        raise ValueError(f"blocking term {term!r}: year() takes the date column birth_date")
    return column, head, int(number) if number is not None else None


def derived_column(column: str, function: str | None, n: int | None) -> str:
    """The match-input column a blocking term compares ('name_key_prefix4' for a prefix)."""
    if function is None:
        return column
    return f"{column}_{function}{n or ''}"


_DERIVED = re.compile(
    rf"^({'|'.join(sorted(MATCH_COLUMNS, key=len, reverse=True))})_"
    rf"({'|'.join(BLOCKING_FUNCTIONS)})(\d*)$"
)


def parse_derived(name: str) -> tuple[str, str, int | None] | None:
    """(column, function, n) of a derived column name such as 'name_key_prefix4', else None."""
    found = _DERIVED.match(name)
    if not found:
        return None
    column, function, n = found.groups()
    if bool(n) != bool(BLOCKING_FUNCTIONS[function][0]):
        return None
    return column, function, int(n) if n else None


def derived_in_rules(splink: dict[str, Any]) -> list[str]:
    """The derived columns a Splink settings dict's blocking rules read."""
    names = []
    for rule in splink.get("blocking_rules_to_generate_predictions", []):
        for name in re.findall(r'[lr]\."?([A-Za-z_][A-Za-z0-9_]*)"?', rule["blocking_rule"]):
            if parse_derived(name) and name not in names:
                names.append(name)
    return names


class Comparison(_Strict):
    """How one match column is compared, from the strongest level down.

    - exact: equal or not
    - jaro_winkler / jaro: exact, then similarity at or above each threshold (0-1)
    - levenshtein / damerau_levenshtein: exact, then at most each number of edits
    - id: exact, then one edit or one transposition of two neighbours (typing errors)
    - date: exact, one character off, then within each distance ('1 month', '1 year' ...)
    - name: exact, then Jaro-Winkler at or above each threshold (default 0.92, 0.88, 0.7)
    """

    method: Literal[METHODS] = "exact"  # type: ignore[valid-type]
    thresholds: list[float] | list[str] | None = None
    term_frequency: bool = False  # weigh agreement on a rare value more than on a common one

    @model_validator(mode="after")
    def _thresholds(self) -> Comparison:
        t = self.thresholds
        m = self.method
        if m in ("exact", "id") and t:
            raise ValueError(f"method '{m}' takes no thresholds")
        if m in ("jaro_winkler", "jaro", "levenshtein", "damerau_levenshtein") and not t:
            raise ValueError(f"method '{m}' needs thresholds, e.g. {_EXAMPLE[m]}")
        if (
            m in ("jaro_winkler", "jaro", "name")
            and t
            and not all(isinstance(v, float | int) and 0 < v <= 1 for v in t)
        ):
            raise ValueError(f"method '{m}': thresholds are similarities in (0, 1]")
        if m in ("levenshtein", "damerau_levenshtein") and not all(
            isinstance(v, float | int) and v == int(v) and v >= 1 for v in t or []
        ):
            raise ValueError(f"method '{m}': thresholds are whole numbers of edits (1, 2 ...)")
        if m == "date" and t:
            for v in t:
                if not isinstance(v, str) or not re.fullmatch(r"\d+ (day|month|year)", v):
                    raise ValueError(
                        f"method 'date': threshold {v!r} is not a distance such as '1 month', "
                        "'1 year', '10 year' (units: day, month, year)"
                    )
        return self


_EXAMPLE = {
    "jaro_winkler": "[0.95, 0.88]",
    "jaro": "[0.9, 0.7]",
    "levenshtein": "[1, 2]",
    "damerau_levenshtein": "[1, 2]",
}


def _rule(value: Any, where: str) -> list[str]:
    terms = [value] if isinstance(value, str) else value
    if not isinstance(terms, list) or not terms:
        raise ValueError(f"{where}: a rule is a non-empty list of blocking terms")
    for term in terms:
        parse_term(term)
    return [str(t) for t in terms]


class Training(_Strict):
    """How `train-model` estimates the model: the share of duplicates from pairs agreeing
    on the `deterministic_rules` (found with `recall`), m-probabilities by expectation
    maximisation in one pass per `em_rules` entry (a pass learns every column its rule
    does not block on)."""

    deterministic_rules: list[list[str]] = [
        ["country", "tax_id"],
        ["party_type", "email"],
        ["national_id"],
        ["party_type", "name_key", "birth_date"],
        ["party_type", "name_key", "postal_code", "street_key"],
    ]
    recall: float = Field(default=0.7, gt=0, le=1)
    em_rules: list[list[str]] = [["party_type", "country", "name_key"], ["postal_code"]]
    u_sample_pairs: int = Field(default=5_000_000, ge=10_000)

    @field_validator("deterministic_rules", "em_rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("a non-empty list of rules (each a list of blocking terms)")
        return [_rule(v, f"rule {i + 1}") for i, v in enumerate(value)]


DEFAULT_COMPARISONS: dict[str, Comparison] = {
    "name_key": Comparison(method="jaro_winkler", thresholds=[0.95, 0.88]),
    "birth_date": Comparison(method="levenshtein", thresholds=[1]),
    "national_id": Comparison(),
    "tax_id": Comparison(),
    "email": Comparison(),
    "phone": Comparison(),
    "street_key": Comparison(method="jaro_winkler", thresholds=[0.95, 0.85]),
    "postal_code": Comparison(),
    "city_key": Comparison(),
}
DEFAULT_BLOCKING_RULES: list[list[str]] = [
    ["party_type", "country", "name_key"],
    ["party_type", "country", "postal_code", "prefix(name_key, 4)"],
    ["party_type", "phone"],
    ["party_type", "email"],
    ["country", "tax_id"],
    ["national_id"],
    ["party_type", "birth_date", "postal_code"],
    ["country", "postal_code", "street_key"],
]


class MatchSettings(_Strict):
    """The model's shape: blocking rules, comparisons per match column, training rules, and
    the identifiers whose conflict keeps two records apart."""

    blocking_rules: list[list[str]] = DEFAULT_BLOCKING_RULES
    comparisons: dict[str, Comparison] = DEFAULT_COMPARISONS
    training: Training = Training()
    # two records with different valid values of any of these never link automatically
    exclusions: list[Literal[EXCLUDABLE]] = list(EXCLUDABLE)  # type: ignore[valid-type]
    # comparisons `mapped` left out, as no configured source maps their fields
    _left_out: tuple[str, ...] = PrivateAttr(default=())

    @property
    def left_out(self) -> tuple[str, ...]:
        """The configured comparisons left out because no source maps their fields."""
        return self._left_out

    @field_validator("blocking_rules", mode="before")
    @classmethod
    def _blocking(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("a non-empty list of rules (each a list of blocking terms)")
        return [_rule(v, f"rule {i + 1}") for i, v in enumerate(value)]

    @field_validator("comparisons", mode="before")
    @classmethod
    def _comparisons(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not value:
            raise ValueError("a mapping of match column -> comparison, e.g. {email: exact}")
        out = {}
        for column, spec in value.items():
            _known_column(column, "comparisons")
            if column in ("party_type", "country"):
                raise ValueError(
                    f"comparisons: '{column}' is for blocking, not comparing (records of "
                    "different party types or countries are never candidates when a rule "
                    "blocks on it)"
                )
            out[column] = {"method": spec} if isinstance(spec, str) else spec
        return out

    def mapped(self, mapped_fields: set[str]) -> MatchSettings:
        """These settings without the comparisons of match columns no source maps."""
        kept = {c: v for c, v in self.comparisons.items() if column_mapped(c, mapped_fields)}
        left_out = tuple(c for c in self.comparisons if c not in kept)
        if not kept:
            raise ValueError(
                "matching.comparisons: no compared column is mapped by any source "
                f"(compared: {', '.join(self.comparisons)}); map at least one of them"
            )
        settings = self.model_copy(update={"comparisons": kept})
        settings._left_out = left_out
        return settings


def column_mapped(column: str, mapped_fields: set[str]) -> bool:
    """Whether some configured source maps a canonical field the match column is made of."""
    fields = MATCH_COLUMNS[column]
    return not fields or bool(set(fields) & mapped_fields)


def derived_columns(settings: MatchSettings) -> list[str]:
    """Every derived column the blocking and training rules read, in a stable order."""
    out: list[str] = []
    rules = settings.blocking_rules + settings.training.deterministic_rules
    for rule in rules + settings.training.em_rules:
        for term in rule:
            column, function, n = parse_term(term)
            name = derived_column(column, function, n)
            if function is not None and name not in out:
                out.append(name)
    return out


def block_on_rule(rule: list[str]):
    """A Splink blocking rule: records agreeing on every term of `rule`."""
    from splink import block_on

    return block_on(*(derived_column(*parse_term(t)) for t in rule))


def _date_thresholds(values: list[str]) -> tuple[list[int], list[str]]:
    numbers, units = [], []
    for v in values:
        n, unit = v.split()
        numbers.append(int(n))
        units.append(unit)
    return numbers, units


def splink_comparison(column: str, spec: Comparison):
    """The Splink comparison of one match column."""
    import splink.comparison_library as cl

    t = spec.thresholds
    if spec.method == "exact":
        comparison = cl.ExactMatch(column)
    elif spec.method == "jaro_winkler":
        comparison = cl.JaroWinklerAtThresholds(column, list(t))
    elif spec.method == "jaro":
        comparison = cl.JaroAtThresholds(column, list(t))
    elif spec.method == "levenshtein":
        comparison = cl.LevenshteinAtThresholds(column, [int(v) for v in t])
    elif spec.method == "damerau_levenshtein":
        comparison = cl.DamerauLevenshteinAtThresholds(column, [int(v) for v in t])
    elif spec.method == "id":
        comparison = cl.DamerauLevenshteinAtThresholds(column, [1])
    elif spec.method == "name":
        kwargs = {"jaro_winkler_thresholds": list(t)} if t else {}
        comparison = cl.NameComparison(column, **kwargs)
    else:  # date: ISO text (birth_date is staged as a date, matched as 'YYYY-MM-DD')
        numbers, units = _date_thresholds(t or ["1 month", "1 year", "10 year"])
        comparison = cl.DateOfBirthComparison(
            column,
            input_is_string=True,
            datetime_format="%Y-%m-%d",
            datetime_thresholds=numbers,
            datetime_metrics=units,
        )
    if spec.term_frequency:
        comparison = comparison.configure(term_frequency_adjustments=True)
    return comparison


def splink_settings(settings: MatchSettings, dialect: str = "duckdb") -> dict[str, Any]:
    """Splink's settings dict for `settings`, untrained, in `dialect`'s SQL (duckdb, or
    spark for custpipe.spark.scoring)."""
    from splink import SettingsCreator

    creator = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=[splink_comparison(c, spec) for c, spec in settings.comparisons.items()],
        blocking_rules_to_generate_predictions=[block_on_rule(r) for r in settings.blocking_rules],
        additional_columns_to_retain=[],
    )
    return creator.create_settings_dict(sql_dialect_str=dialect)


def settings_shape(splink: dict[str, Any]) -> dict[str, Any]:
    """What a Splink settings dict decides, without what training learns: the blocking rules'
    SQL and, per comparison, its levels' SQL and term-frequency columns."""
    return {
        "blocking_rules": [
            r["blocking_rule"] for r in splink["blocking_rules_to_generate_predictions"]
        ],
        "comparisons": {
            c["output_column_name"]: [
                (lv["sql_condition"], lv.get("tf_adjustment_column"))
                for lv in c["comparison_levels"]
            ]
            for c in splink["comparisons"]
        },
    }


def shape_differences(
    trained: dict[str, Any], configured: dict[str, Any], left_out: tuple[str, ...] = ()
) -> list[str]:
    """How a model's settings shape differs from the configured one, in words (empty: same);
    `left_out`: configured comparisons dropped because no source maps them."""
    out = []
    a, b = settings_shape(trained), settings_shape(configured)
    rules_a, rules_b = a["blocking_rules"], b["blocking_rules"]
    if len(rules_a) != len(rules_b):
        out.append(f"{len(rules_a)} blocking rules in the model, {len(rules_b)} configured")
    else:
        for i, (x, y) in enumerate(zip(rules_a, rules_b, strict=True)):
            if x != y:
                out.append(f"blocking rule {i + 1} differs (model: {x}; configured: {y})")
    for column in b["comparisons"].keys() - a["comparisons"].keys():
        out.append(f"'{column}' is compared in the configuration, not in the model")
    for column in a["comparisons"].keys() - b["comparisons"].keys():
        why = (
            " (pipeline.yaml lists it, but no source maps the fields it is made of)"
            if column in left_out
            else ""
        )
        out.append(f"'{column}' is compared in the model, not in the configuration{why}")
    for column in a["comparisons"].keys() & b["comparisons"].keys():
        if a["comparisons"][column] != b["comparisons"][column]:
            out.append(f"'{column}' is compared differently")
    if not out and list(a["comparisons"]) != list(b["comparisons"]):
        out.append("the comparisons are in another order")
    return out

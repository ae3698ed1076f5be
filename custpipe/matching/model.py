"""The probabilistic match model: Splink (Fellegi–Sunter) on DuckDB, trained apart, saved as JSON.

Training is an explicit step (`custpipe train-model`, or the `train_match_model` Dagster
job); the nightly run only predicts with the saved file, so its results are deterministic.
The file holds Splink's settings with the trained m/u parameters under "splink" and
custpipe's own figures under "custpipe" (the number of records it was trained on, which
rescales the prior for a run of another size, and the training date).

What the model compares and which pairs it scores are data: `matching:` in pipeline.yaml,
read by `custpipe.matching.settings`. Comparisons and blocking rules read canonical match
columns only (see `MATCH_INPUT_SQL`), so any configured source takes part without code. The
demo deployment compares persons on their name key (given and family name,
order-insensitive), birth date and national ID; companies on the name key with legal forms
removed and the tax ID; both on e-mail, phone, street, postcode and city. Given and family
names are not compared again apart from the name key: one fact counted three times would
break the model's independence assumption.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from custpipe import warehouse
from custpipe.matching.linking import ROLE_ADDRESS
from custpipe.matching.settings import (
    BLOCKING_FUNCTIONS,
    MatchSettings,
    block_on_rule,
    derived_columns,
    derived_in_rules,
    parse_derived,
    shape_differences,
    splink_settings,
)
from custpipe.matching.workspace import MatchWorkspace, match_workspace, staged_rows

# One row per record to match, from the workspace's staged rows (`staged_rows`); weak values
# are nulled so that they are no evidence (an invalid tax ID, a role e-mail address).
MATCH_INPUT_SQL = f"""
SELECT node AS unique_id,
       party_type,
       name_key,
       strftime(birth_date, '%Y-%m-%d') AS birth_date,  -- ISO day: what `date` compares
       upper(regexp_replace(national_id, '[^0-9A-Za-z]', '', 'g')) AS national_id,
       CASE WHEN tax_id_valid THEN tax_id END AS tax_id,
       CASE WHEN email_valid AND NOT regexp_matches(email, '{ROLE_ADDRESS}') THEN email END
           AS email,
       CASE WHEN phone_valid THEN phone END AS phone,
       nullif(lower(regexp_replace(strip_accents(street), '[^0-9A-Za-z\\p{{L}}]', '', 'g')), '')
           AS street_key,
       CASE WHEN postal_code_valid IS NOT FALSE THEN postal_code END AS postal_code,
       lower(strip_accents(city)) AS city_key,
       nullif(lower(strip_accents(trim(given_name))), '') AS given_name,
       nullif(lower(strip_accents(trim(family_name))), '') AS family_name,
       nullif(lower(strip_accents(trim(region))), '') AS region,
       country
FROM {{nodes}}
"""  # {nodes}: the staged rows (str.replace, the text has braces)


@dataclass(frozen=True)
class MatchModel:
    """A trained model: Splink settings plus custpipe's figures."""

    splink: dict[str, Any]
    trained_records: int
    trained_on: str

    @classmethod
    def load(cls, path: Path) -> MatchModel:
        """Read a model file; a clear error naming the file, what is wrong and the fix."""
        path = Path(path)
        fix = "retrain it with `custpipe train-model` (or restore the file from git)"
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: no trained match model; run `custpipe train-model` (or the "
                "train_match_model job) and commit the file"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{path}: not valid JSON ({exc.__class__.__name__}: {exc}); the match model "
                f"file is damaged: {fix}"
            ) from exc
        problem = _model_problem(data)
        if problem:
            raise ValueError(f"{path}: not a custpipe match model: {problem}; {fix}")
        meta = data["custpipe"]
        return cls(data["splink"], int(meta["trained_records"]), str(meta["trained_on"]))

    def save(self, path: Path) -> None:
        """Write the model as stable, reviewable JSON."""
        body = {
            "custpipe": {"trained_records": self.trained_records, "trained_on": self.trained_on},
            "splink": self.splink,
        }
        Path(path).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def check_settings(self, settings: MatchSettings, path: Path | str = "the match model") -> None:
        """Refuse a model trained under other blocking rules or comparisons than `settings`
        (the deployment's `matching:` section, less the columns no source maps)."""
        differences = shape_differences(self.splink, splink_settings(settings), settings.left_out)
        if differences:
            raise ValueError(
                f"{path} was trained under other matching settings than pipeline.yaml's "
                f"`matching:` section ({'; '.join(differences)}); retrain it with `custpipe "
                "train-model` (or the train_match_model job), review the diff and commit it"
            )

    def settings_for(self, records: int) -> dict[str, Any]:
        """Splink settings with the prior rescaled to a run of `records` records.

        The chance that two random records match falls as 1/N for a fixed duplicate rate,
        so for a run larger than the training data the prior is scaled down by
        trained_records / records. It is never scaled up: a small run (a test, a first
        partial load) is not evidence of a higher duplicate rate.
        """
        settings = json.loads(json.dumps(self.splink))
        scale = min(1.0, self.trained_records / max(records, 1))
        settings["probability_two_random_records_match"] *= scale
        settings["retain_intermediate_calculation_columns"] = True
        settings["retain_matching_columns"] = True
        return settings


def _model_problem(data: Any) -> str | None:
    """What is wrong with the structure of a parsed model file (None: nothing)."""
    if not isinstance(data, dict):
        return (
            f"the file holds a {type(data).__name__}, not an object with keys 'custpipe', 'splink'"
        )
    for key in ("custpipe", "splink"):
        if key not in data:
            return f"key '{key}' is missing"
        if not isinstance(data[key], dict):
            return f"'{key}' is a {type(data[key]).__name__}, not an object"
    meta, splink = data["custpipe"], data["splink"]
    for key in ("trained_records", "trained_on"):
        if key not in meta:
            return f"key 'custpipe.{key}' is missing"
    records = meta["trained_records"]
    if isinstance(records, bool) or not isinstance(records, int) or records < 1:
        return f"'custpipe.trained_records' is {records!r}, not a positive number of records"
    for key in ("comparisons", "probability_two_random_records_match"):
        if key not in splink:
            return f"key 'splink.{key}' is missing"
    prior = splink["probability_two_random_records_match"]
    if isinstance(prior, bool) or not isinstance(prior, int | float) or not 0 < prior <= 1:
        return f"'splink.probability_two_random_records_match' is {prior!r}, not in (0, 1]"
    comparisons = splink["comparisons"]
    if not isinstance(comparisons, list) or not comparisons:
        return "'splink.comparisons' is not a non-empty list"
    for i, comparison in enumerate(comparisons):
        where = f"splink.comparisons[{i}]"
        if not isinstance(comparison, dict):
            return f"'{where}' is not an object"
        for key in ("output_column_name", "comparison_levels"):
            if key not in comparison:
                return f"key '{where}.{key}' is missing"
        levels = comparison["comparison_levels"]
        if not isinstance(levels, list) or not all(isinstance(lv, dict) for lv in levels):
            return f"'{where}.comparison_levels' is not a list of objects"
        for j, level in enumerate(levels):
            if "label_for_charts" not in level and not level.get("is_null_level"):
                return f"key '{where}.comparison_levels[{j}].label_for_charts' is missing"
    return None


def _splink_linker(frame: Any, settings: dict[str, Any]):
    from splink import DuckDBAPI, Linker

    config = {  # capped like the warehouse; beyond the cap DuckDB spills to a temp folder
        "memory_limit": os.environ.get("CUSTPIPE_DUCKDB_MEMORY_LIMIT", "2GB"),
        "temp_directory": str(Path(tempfile.gettempdir()) / "custpipe-splink"),
    }
    db_api = DuckDBAPI(duckdb.connect(config=config))
    table = db_api.register(frame, dataset_display_name="customers")
    return Linker(table, settings, log_level=logging.WARNING)


def phonetic_key(function: str, value: str | None) -> str | None:
    """Soundex, Metaphone or primary Double Metaphone code of a value's letters (None for
    no letters)."""
    import jellyfish
    from doublemetaphone import doublemetaphone

    letters = "".join(ch for ch in value or "" if ch.isalpha() or ch == " ").strip()
    if not letters:
        return None
    if function == "soundex":
        return jellyfish.soundex(letters.replace(" ", ""))
    if function == "dmetaphone":
        return doublemetaphone(letters)[0] or None
    return jellyfish.metaphone(letters) or None


#: The canonical match columns of `MATCH_INPUT_SQL` (after `unique_id`), in its order: what
#: mdm.match_records keeps of each record (`custpipe.matching.pairs`).
MATCH_COLUMNS = (
    "party_type", "name_key", "birth_date", "national_id", "tax_id", "email", "phone",
    "street_key", "postal_code", "city_key", "given_name", "family_name", "region", "country",
)  # fmt: skip


def derived_parts(derived: list[str] | tuple[str, ...]) -> tuple[list[str], list[tuple]]:
    """The `derived` blocking columns split into SQL select items over the canonical
    columns (`expr AS name`) and Python ones ((name, column, function): phonetic keys)."""
    sql_parts, python_parts = [], []
    for name in derived:
        parsed = parse_derived(name)
        if parsed is None:
            raise ValueError(f"'{name}' is not a derived match column")
        column, function, n = parsed
        template = BLOCKING_FUNCTIONS[function][1]
        if template is None:
            python_parts.append((name, column, function))
        else:
            sql_parts.append(f"{template.format(col=column, n=n)} AS {name}")
    return sql_parts, python_parts


def with_python_parts(table, python_parts: list[tuple]):
    """Arrow `table` with the Python-computed derived columns appended (phonetic keys)."""
    import pyarrow as pa

    for name, column, function in python_parts:
        values = [phonetic_key(function, v) for v in table.column(column).to_pylist()]
        table = table.append_column(name, pa.array(values, type=pa.string()))
    return table


def match_input(
    ws: MatchWorkspace, derived: list[str] | tuple[str, ...] = (), nodes: str | None = None
):
    """The records to match (from `ws.nodes`, or those of relation `nodes` (node)),
    canonical match columns only, as Arrow, plus the `derived` blocking columns (such as
    'name_key_prefix4', 'family_name_soundex')."""
    sql_parts, python_parts = derived_parts(derived)
    query = MATCH_INPUT_SQL.replace("{nodes}", staged_rows(ws, nodes))
    if sql_parts:
        query = f"SELECT *, {', '.join(sql_parts)} FROM ({query})"
    # execute(), not sql(): the caller's connection may hold a partly fetched result, which
    # DuckDB lets execute() replace; the extra copy it warns about is one small table.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
        table = ws.con.execute(query).to_arrow_table()
    return with_python_parts(table, python_parts)


def train_model(
    ws: MatchWorkspace, trained_on: str, settings: MatchSettings | None = None, seed: int = 42
) -> MatchModel:
    """Train m/u parameters on the records of `ws.nodes` (deterministic for a seed) for the
    blocking rules and comparisons of `settings` (default: the demo deployment's)."""
    from splink.internals.exceptions import EMTrainingException

    settings = settings or MatchSettings()
    frame = match_input(ws, derived_columns(settings))
    linker = _splink_linker(frame, splink_settings(settings))
    train = linker.training
    rules = settings.training
    # the prior from pairs that near-certainly match, whichever identifiers the sources carry
    try:
        train.estimate_probability_two_random_records_match(
            [block_on_rule(r) for r in rules.deterministic_rules], recall=rules.recall
        )
    except ValueError as exc:  # Splink: log of a zero probability
        raise ValueError(
            "cannot train: no two records agree on a rule of matching.training."
            "deterministic_rules (by default: tax ID, e-mail, national ID, name + birth date, "
            "name + full address), so the share of duplicates cannot be estimated; map those "
            "fields, add a rule, or stage more data"
        ) from exc
    train.estimate_u_using_random_sampling(max_pairs=rules.u_sample_pairs, seed=seed)
    for rule in rules.em_rules:
        try:
            train.estimate_parameters_using_expectation_maximisation(
                block_on_rule(rule), record_sample_proportion=1.0
            )
        except EMTrainingException as exc:
            raise ValueError(
                f"cannot train: no two records agree on the training rule {rule} "
                "(matching.training.em_rules), so the model has no pairs to learn from; "
                "stage more data, or check the mapping of those fields"
            ) from exc
    trained = linker.misc.save_model_to_json()
    trained.pop("linker_uid", None)
    return MatchModel(trained, frame.num_rows, trained_on)


def train_and_save(
    warehouse_path: Path,
    model_path: Path,
    trust: dict[str, int],
    settings: MatchSettings | None = None,
    seed: int = 42,
) -> MatchModel:
    """Train on the warehouse's accepted staged records and write the model file."""
    import datetime as dt

    trained_on = f"{dt.datetime.now(dt.UTC).date().isoformat()}, seed {seed}"
    with (
        warehouse.connect(warehouse_path, read_only=True) as con,
        match_workspace(con, trust) as ws,
    ):
        if ws.records < 100:
            raise ValueError(
                f"{warehouse_path}: only {ws.records} accepted records; run the nightly job on "
                "representative data before training a match model"
            )
        model = train_model(ws, trained_on, settings, seed)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(model_path)
    return model


def _level_labels(settings: dict[str, Any]) -> dict[str, dict[int, str]]:
    labels: dict[str, dict[int, str]] = {}
    for comp in settings["comparisons"]:
        name = comp["output_column_name"]
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        labels[name] = {len(levels) - 1 - i: lv["label_for_charts"] for i, lv in enumerate(levels)}
        labels[name][-1] = "missing"
    return labels


def score_pairs(ws: MatchWorkspace, model: MatchModel, min_probability: float) -> int:
    """Make `ws.scored`: the candidate pairs scored at or above `min_probability` — a, b
    (nodes), probability, and per compared field its comparison level (`gamma_<field>`) and
    match weight (`mw_<field>`); return how many. The pairs go from Splink's database to the
    workspace in Arrow batches, never whole into pandas.
    """
    frame = match_input(ws, derived_in_rules(model.splink))
    linker = _splink_linker(frame, model.settings_for(frame.num_rows))
    del frame  # Splink holds what it needs
    scored = linker.inference.predict(
        threshold_match_probability=min_probability, warning_mode="never"
    )
    columns = ", ".join(
        [f"gamma_{f}, mw_{f}" for f in compared_fields(model)]
        + [f"mw_tf_adj_{f}" for f in tf_fields(model)]
    )
    pairs = scored.as_duckdbpyrelation().query(
        "p",
        f"SELECT unique_id_l AS a, unique_id_r AS b, match_probability AS probability, "
        f"{columns} FROM p ORDER BY a, b",
    )
    with warehouse.registered(ws.con, "splink_pairs", pairs.to_arrow_reader(100_000)):
        ws.con.execute(f"CREATE OR REPLACE TEMP TABLE {ws.scored} AS SELECT * FROM splink_pairs")
    scored.drop_table_from_database_and_remove_from_cache()
    return ws.con.execute(f"SELECT count(*) FROM {ws.scored}").fetchone()[0]


def tf_fields(model: MatchModel) -> list[str]:
    """The compared fields whose agreement is adjusted by term frequency."""
    return [
        c["output_column_name"]
        for c in model.splink["comparisons"]
        if any(lv.get("tf_adjustment_column") for lv in c["comparison_levels"])
    ]


def compared_fields(model: MatchModel) -> list[str]:
    """The canonical fields the model compares, in its order."""
    return [c["output_column_name"] for c in model.splink["comparisons"]]


def explain(pairs: pd.DataFrame, model: MatchModel) -> list[str]:
    """Per pair, JSON naming each compared field's level and match weight, its term-frequency
    adjustment included (missing or not scored: omitted); a pair an exclusion kept apart
    (columns `kept_apart`, `linked_by`) also names the reason and the rule that linked it.

    Field names, rules and comparison levels only, never the records' values.
    """
    fields = compared_fields(model)
    tf = set(tf_fields(model))
    labels = _level_labels(model.splink)
    out = []
    for row in pairs.to_dict("records"):
        parts: dict[str, Any] = {}
        if isinstance(row.get("kept_apart"), str):
            parts = {"kept_apart": row["kept_apart"], "linked_by": row.get("linked_by")}
        for f in fields:
            gamma = row.get(f"gamma_{f}")
            if gamma is None or pd.isna(gamma) or int(gamma) == -1:
                continue
            weight = float(row[f"mw_{f}"])
            if f in tf and not pd.isna(row.get(f"mw_tf_adj_{f}")):
                weight += float(row[f"mw_tf_adj_{f}"])  # a rare value weighs more
            parts[f] = {"level": labels[f].get(int(gamma), "?"), "weight": round(weight, 2)}
        out.append(json.dumps(parts, ensure_ascii=False))
    return out

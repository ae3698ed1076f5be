"""Pair scoring on Spark: Splink's Spark backend with the saved model, equal to DuckDB's.

The model file holds Splink settings in DuckDB's SQL (`jaro_winkler_similarity(...)`), which
Spark cannot run. The Spark settings are written again from the deployment's `matching:`
section in Spark's dialect (Splink writes each comparison for its backend) and take the
model's trained m and u probabilities level by level (:func:`spark_settings`); the model's
own shape check (`MatchModel.check_settings`) has already proved the two have the same
comparisons and levels.

Equal results, not close ones:
- Splink's Spark jar computes Jaro and Jaro-Winkler differently from DuckDB (up to 0.13
  apart on real names), which moves pairs between comparison levels. custpipe registers
  its own `jaro_winkler`, `jaro_sim` and `damerau_levenshtein` for the session: vectorised
  UDFs that evaluate DuckDB's functions on each Arrow batch — the same code, not another
  implementation.
- Spark returns the pairs and their comparison levels only; the match weights are computed
  in the warehouse from the levels with the SQL Splink writes for DuckDB
  (:func:`weight_columns_sql`), so stored weights are the DuckDB engine's to the last bit.
  Splink's threshold is a sum of the same constants in the same order (IEEE additions, the
  same in Java and C++), so both engines keep the same pairs.
Term-frequency adjustments are computed from the data by each engine; a model with them is
refused on Spark (the weights could differ in the last bits).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd  # module level: Spark reads the UDF's type hints from its globals

from custpipe.matching.settings import MatchSettings, splink_settings

if TYPE_CHECKING:
    from custpipe.spark.runners import SparkRunner

#: Splink's Spark names of the similarity functions -> DuckDB's function it must equal
DUCKDB_FUNCTIONS = {
    "jaro_winkler": ("jaro_winkler_similarity", "double"),
    "jaro_sim": ("jaro_similarity", "double"),
    "damerau_levenshtein": ("damerau_levenshtein", "int"),
}
_TRAINED = ("m_probability", "u_probability")


def _duckdb_udf(function: str, result_type: str):
    """A vectorised Spark UDF that evaluates DuckDB's `function(a, b)` on each batch."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf(result_type)
    def udf(a: pd.Series, b: pd.Series) -> pd.Series:
        import duckdb

        con = duckdb.connect()
        try:
            con.register("batch", pd.DataFrame({"a": a, "b": b}))
            result = con.execute(f"SELECT {function}(a, b) AS v FROM batch").df()["v"]
        finally:
            con.close()
        return result.astype("Int32") if result_type == "int" else result.astype("float64")

    return udf


def register_duckdb_similarities(spark) -> None:
    """Make the session's similarity functions DuckDB's (after Splink registered its jar's)."""
    for name, (function, result_type) in DUCKDB_FUNCTIONS.items():
        spark.udf.register(name, _duckdb_udf(function, result_type))


def spark_settings(trained: dict[str, Any], configured: dict[str, Any]) -> dict[str, Any]:
    """`trained` (a model's Splink settings, DuckDB SQL) with its comparisons and blocking
    rules written again in Spark's SQL from `configured` (the same settings, untrained,
    written for Spark): m and u probabilities copied level by level. A ValueError names a
    comparison or level the two do not share."""
    levels_of = {c["output_column_name"]: c for c in configured["comparisons"]}
    comparisons = []
    for comparison in trained["comparisons"]:
        name = comparison["output_column_name"]
        if name not in levels_of:
            raise ValueError(f"comparison {name} of the model is not in the matching settings")
        target = levels_of[name]
        ours, theirs = comparison["comparison_levels"], target["comparison_levels"]
        labels = [lv.get("label_for_charts") for lv in ours]
        if labels != [lv.get("label_for_charts") for lv in theirs]:
            raise ValueError(
                f"comparison {name}: the model's levels {labels} are not those of the "
                "matching settings; retrain the model (custpipe train-model)"
            )
        if any(lv.get("tf_adjustment_column") for lv in ours):
            raise ValueError(
                f"comparison {name} has term-frequency adjustments, which engine: spark "
                "does not support yet (their weights are computed from the data by each "
                "engine and could differ); use engine: duckdb"
            )
        copied = [
            dict(spark_level) | {k: level[k] for k in _TRAINED if k in level}
            for level, spark_level in zip(ours, theirs, strict=True)
        ]
        comparisons.append(dict(target) | {"comparison_levels": copied})
    return trained | {
        "comparisons": comparisons,
        "blocking_rules_to_generate_predictions": configured[
            "blocking_rules_to_generate_predictions"
        ],
        "sql_dialect": "spark",
    }


def weight_columns_sql(settings: dict[str, Any]) -> list[str]:
    """Per comparison, Splink's DuckDB SQL of its match weight from its level
    (`CASE WHEN gamma_<f> = 2 THEN cast(... as float8) ... END AS mw_<f>`)."""
    from splink.internals.settings_creator import SettingsCreator

    parsed = SettingsCreator.from_path_or_dict(settings).get_settings("duckdb")
    columns = []
    for comparison in parsed.comparisons:
        gamma = comparison._gamma_column_name  # Splink's own names and SQL (splink 5.0.0)
        cases = "\n".join(level._match_weight_sql(gamma) for level in comparison.comparison_levels)
        columns.append(f"CASE {cases} END AS {comparison._mw_column_name}")
    return columns


def score_levels(
    session, frame: Path, settings: dict[str, Any], threshold: float, out: Path
) -> None:
    """On `session`: the pairs of `frame` (match input, a Parquet file) at or above
    `threshold` under `settings` (Splink settings in Spark SQL, blocking rules as they are to
    run): unique_id_l, unique_id_r and one gamma_<field> per comparison, written by the
    executors as Parquet parts in the folder `out`."""
    from splink import Linker
    from splink.backends.spark import SparkAPI

    from custpipe.spark.sql import write_result

    db_api = SparkAPI(spark_session=session)
    register_duckdb_similarities(session)
    view = f"custpipe_match_input_{uuid.uuid4().hex}"  # a session serves many nights
    table = db_api.register(
        session.read.parquet(str(frame)), dataset_display_name="customers", table_name=view
    )
    try:
        linker = Linker(table, settings, log_level=logging.WARNING)
        scored = linker.inference.predict(
            threshold_match_probability=threshold, warning_mode="never"
        )
        try:
            gammas = [f"gamma_{c['output_column_name']}" for c in settings["comparisons"]]
            pairs = scored.as_spark_dataframe().select("unique_id_l", "unique_id_r", *gammas)
            write_result(pairs, out)
        finally:
            scored.drop_table_from_database_and_remove_from_cache()
    finally:
        session.catalog.dropTempView(view)


@dataclass(frozen=True)
class SparkScoring:
    """Score candidate pairs on Spark (`engine: spark`): the deployment's matching settings
    (to write the model's comparisons in Spark SQL) and where the Spark work runs
    (`runner`: custpipe.spark.runners — this process's session, or spark-submit)."""

    settings: MatchSettings
    runner: SparkRunner

    def settings_for(self, trained: dict[str, Any]) -> dict[str, Any]:
        """`trained` (Splink settings, DuckDB SQL) written for Spark (:func:`spark_settings`)."""
        return spark_settings(trained, splink_settings(self.settings, dialect="spark"))

    def describe(self) -> str:
        """Where the pairs are scored, for the run's metadata (no values)."""
        return self.runner.describe()

    def predict(
        self, frame: Path, trained: dict[str, Any], threshold: float, restrict: bool, out: Path
    ) -> None:
        """The pairs of `frame` (match input, a Parquet file) at or above `threshold` under
        `trained` (Splink settings, DuckDB SQL, prior as tonight's): unique_id_l, unique_id_r
        and one gamma_<field> per comparison, as Parquet parts in `out`. `restrict`: only
        pairs with a record flagged `changed`."""
        from custpipe.matching.pairs import restricted_rules

        settings = restricted_rules(self.settings_for(trained), restrict)
        self.runner.score(frame, settings, threshold, out)

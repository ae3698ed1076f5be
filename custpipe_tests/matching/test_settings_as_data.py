"""Matching settings as data: a deployment's own blocking rules and comparisons, checked,
trained and predicted with; a model trained under other settings is refused."""

import json
import logging

import duckdb
import pandas as pd
import pytest
import yaml

from custpipe.config import ConfigError, MatchingConfig, SourceConfig, load_config
from custpipe.mapping.canonical import stage_customers
from custpipe.matching.blocking import analyse_blocking
from custpipe.matching.consolidate import Matcher, consolidate, load_matcher
from custpipe.matching.evaluate import evaluate_matches
from custpipe.matching.model import (
    explain,
    match_input,
    phonetic_key,
    score_pairs,
    tf_fields,
    train_model,
)
from custpipe.matching.settings import MatchSettings
from custpipe.matching.workspace import match_workspace, staged_rows
from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe.warehouse import DDL, append_rows
from custpipe_tests.conftest import edit
from custpipe_tests.matching.test_person_sources import REGISTER_A, REGISTER_B, registers

OWN = {
    "blocking_rules": [
        ["birth_date", "soundex(family_name)"],
        ["national_id"],
        ["prefix(postal_code, 3)", "year(birth_date)", "metaphone(given_name)"],
        ["dmetaphone(family_name)", "street_key"],
    ],
    "comparisons": {
        "given_name": {"method": "name"},
        "family_name": {"method": "jaro_winkler", "thresholds": [0.92], "term_frequency": True},
        "birth_date": {"method": "date", "thresholds": ["1 month", "1 year"]},
        "national_id": {"method": "id"},
        "street_key": {"method": "damerau_levenshtein", "thresholds": [1, 2]},
        "postal_code": "exact",
    },
    "training": {
        "deterministic_rules": [["national_id"], ["family_name", "given_name", "birth_date"]],
        "em_rules": [["birth_date"], ["national_id"]],
    },
}


@pytest.fixture(scope="module")
def registers_warehouse():
    a, b, truth = registers(400)
    con = duckdb.connect()
    con.execute(DDL)
    for name, text, raw in (("register_a", REGISTER_A, a), ("register_b", REGISTER_B, b)):
        source = SourceConfig.model_validate(yaml.safe_load(text) | {"name": name})
        staged, _ = stage_customers(raw.astype(object), source)
        append_rows(con, "staging.customers", staged)
    runs = {"run_id": "v1", "source_system": ["register_a", "register_b"]}
    append_rows(
        con, "quality.validation_runs", pd.DataFrame(runs | {"validated_at": pd.Timestamp(0)})
    )
    return con, truth


TRUST = {"register_a": 1, "register_b": 2}


def test_a_deployment_with_its_own_rules_and_comparisons_trains_and_predicts_with_them(
    registers_warehouse,
):
    con, truth = registers_warehouse
    settings = MatchSettings.model_validate(OWN)
    with match_workspace(con, TRUST) as ws:
        model = train_model(ws, "test", settings, seed=1)
        analysis = analyse_blocking(ws, model.splink)
        derived = ["family_name_soundex", "postal_code_prefix3", "birth_date_year",
                   "family_name_dmetaphone"]  # fmt: skip
        frame = match_input(ws, [*derived, "given_name_metaphone"]).to_pandas()
    rules = [r["blocking_rule"] for r in model.splink["blocking_rules_to_generate_predictions"]]
    assert len(rules) == 4
    assert "family_name_soundex" in rules[0] and "national_id" in rules[1]
    assert all(c in rules[2] for c in ("postal_code_prefix3", "birth_date_year"))
    compared = {c["output_column_name"]: c for c in model.splink["comparisons"]}
    assert list(compared) == list(OWN["comparisons"])
    tf = [lv.get("tf_adjustment_column") for lv in compared["family_name"]["comparison_levels"]]
    assert "family_name" in tf
    labels = [lv["label_for_charts"] for lv in compared["national_id"]["comparison_levels"]]
    assert any("Damerau-Levenshtein" in label and "<= 1" in label for label in labels)

    # the candidates are exactly the pairs agreeing on every term of some configured rule
    rec = frame.set_index("unique_id")
    rules_as_columns = [
        ["birth_date", "family_name_soundex"],
        ["national_id"],
        ["postal_code_prefix3", "birth_date_year", "given_name_metaphone"],
        ["family_name_dmetaphone", "street_key"],
    ]
    seen: set = set()
    for columns, counted in zip(rules_as_columns, analysis.rules, strict=True):
        keyed = rec[columns].dropna().reset_index()
        joined = keyed.merge(keyed, on=columns)
        joined = joined[joined["unique_id_x"] < joined["unique_id_y"]]
        made = set(zip(joined["unique_id_x"], joined["unique_id_y"], strict=True))
        assert made, columns  # every rule makes pairs
        assert counted.pairs == len(made - seen)  # the pairs no earlier rule made
        seen |= made
    assert analysis.candidate_pairs == len(seen)

    result = consolidate(con, "r1", TRUST, "register_a", Matcher(model))
    xref = con.execute("SELECT source_system, source_id, golden_id FROM mdm.customer_xref").df()
    quality = evaluate_matches(xref, truth)
    assert quality.precision >= 0.98 and quality.recall >= 0.95, quality.as_dict()
    assert result.golden == xref["golden_id"].nunique()


def test_a_model_trained_under_other_settings_is_refused_with_the_fix(registers_warehouse):
    con, _ = registers_warehouse
    own = MatchSettings.model_validate(OWN)
    path = DEFAULT_CONFIG_DIR / "match_model.json"  # trained under the demo settings
    with pytest.raises(ValueError) as refused:
        load_matcher(path, 0.99, 0.8, own)
    message = str(refused.value)
    assert "match_model.json" in message and "custpipe train-model" in message
    assert "blocking rules in the model" in message  # what differs: 8 rules vs 4
    assert "'given_name' is compared in the configuration, not in the model" in message

    one_more_level = MatchSettings.model_validate(
        OWN | {"comparisons": OWN["comparisons"] | {"postal_code": {"method": "id"}}}
    )
    with match_workspace(con, TRUST) as ws:
        model = train_model(ws, "test", own, seed=1)
    model.check_settings(own)  # its own settings: accepted
    with pytest.raises(ValueError, match="'postal_code' is compared differently"):
        model.check_settings(one_more_level)


def test_custpipe_check_refuses_a_model_trained_under_other_settings(
    config_dir, tmp_path, monkeypatch, capsys
):
    from custpipe.cli import main

    edit(config_dir / "pipeline.yaml", "    city_key: exact\n", "    city_key: {method: id}\n")
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(config_dir))
    monkeypatch.setenv("CUSTPIPE_DATA", str(tmp_path / "data"))
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "'city_key' is compared differently" in err and "train-model" in err


@pytest.mark.parametrize(
    ("matching", "named"),
    [
        ({"blocking_rules": [["postcode"]]}, "'postcode' is not a match column"),
        ({"blocking_rules": [["initials(name_key)"]]}, "unknown function 'initials'"),
        ({"blocking_rules": [["prefix(name_key)"]]}, "prefix(name_key, N)"),
        ({"blocking_rules": [["soundex(family_name, 2)"]]}, "soundex(family_name)"),
        ({"comparisons": {"shoe_size": "exact"}}, "'shoe_size' is not a match column"),
        ({"comparisons": {"email": "fuzzy"}}, "'exact', 'jaro_winkler'"),
        ({"blocking_rules": [["year(name_key)"]]}, "year() takes the date column birth_date"),
        ({"comparisons": {"email": {"method": "jaro_winkler"}}}, "needs thresholds"),
        ({"comparisons": {"email": {"method": "jaro", "thresholds": [1.5]}}}, "(0, 1]"),
        ({"comparisons": {"phone": {"method": "levenshtein", "thresholds": [0.5]}}}, "whole"),
        ({"comparisons": {"birth_date": {"method": "date", "thresholds": ["2 weeks"]}}}, "unit"),
        ({"comparisons": {"country": "exact"}}, "for blocking"),
        ({"exclusions": ["email"]}, "exclusions"),
        ({"training": {"em_rules": [[]]}}, "non-empty list"),
    ],
)
def test_bad_matching_settings_name_the_problem(matching, named):
    with pytest.raises(ValueError, match=None) as bad:
        MatchingConfig.model_validate(matching)
    assert named in str(bad.value)


def test_a_bad_blocking_rule_in_pipeline_yaml_names_the_file_and_key(config_dir):
    edit(config_dir / "pipeline.yaml", "- [party_type, phone]", "- [party_type, fone]")
    with pytest.raises(ConfigError) as bad:
        load_config(config_dir)
    assert "pipeline.yaml" in str(bad.value) and "matching.blocking_rules" in str(bad.value)
    assert "'fone' is not a match column" in str(bad.value)


def test_comparisons_of_columns_no_source_maps_are_left_out():
    cfg = load_config(DEFAULT_CONFIG_DIR)
    configured = set(cfg.matching.comparisons)
    effective = set(cfg.match_settings().comparisons)
    # no demo source maps a birth date or a national ID
    assert configured - effective == {"birth_date", "national_id"}


def test_phonetic_keys():
    assert phonetic_key("soundex", "müller") == phonetic_key("soundex", "mueller") == "M460"
    assert phonetic_key("metaphone", "Smith") == phonetic_key("metaphone", "Smyth")
    assert phonetic_key("dmetaphone", "Müller") == phonetic_key("dmetaphone", "Mueller") == "MLR"
    assert phonetic_key("dmetaphone", "Schmidt") == phonetic_key("dmetaphone", "Schmitt")
    assert phonetic_key("soundex", "1234") is None and phonetic_key("metaphone", None) is None
    assert phonetic_key("dmetaphone", "") is None


def test_term_frequency_weighs_agreement_on_a_rare_value_more(registers_warehouse):
    con, _ = registers_warehouse
    settings = MatchSettings.model_validate(OWN)
    with match_workspace(con, TRUST) as ws:
        model = train_model(ws, "test", settings, seed=1)
        assert tf_fields(model) == ["given_name", "family_name"]  # name: TF on exact, as Splink
        score_pairs(ws, model, 0.5)
        pairs = con.execute(f"""
            SELECT s.*, na.family_name AS surname, s.gamma_family_name AS gamma
            FROM {ws.scored} s JOIN {staged_rows(ws)} na ON na.node = s.a
            WHERE s.gamma_family_name = 2  -- exact agreement (levels: exact 2, JW 1, else 0)
        """).df()
        counts = con.execute(
            f"SELECT family_name AS surname, count(*) AS n FROM {staged_rows(ws)} GROUP BY 1"
        ).df()
    pairs = pairs.merge(counts, on="surname")
    common, rare = pairs["n"].max(), pairs["n"].min()
    assert common > rare
    tf_common = pairs.loc[pairs["n"] == common, "mw_tf_adj_family_name"].iloc[0]
    tf_rare = pairs.loc[pairs["n"] == rare, "mw_tf_adj_family_name"].iloc[0]
    assert tf_rare > tf_common  # the same exact agreement, worth more on a rarer surname
    # the explanation reports the weight the score used: base weight + adjustment
    explained = json.loads(explain(pairs.head(1), model)[0])["family_name"]["weight"]
    base, adj = pairs.iloc[0]["mw_family_name"], pairs.iloc[0]["mw_tf_adj_family_name"]
    assert explained == round(base + adj, 2)


def test_training_warns_about_no_field_the_deployment_does_not_map(registers_warehouse, caplog):
    con, _ = registers_warehouse
    mapped = {"name", "given_name", "family_name", "street", "postal_code", "country",
              "birth_date", "national_id", "party_type"}  # fmt: skip
    settings = MatchSettings().mapped(mapped)
    assert set(settings.left_out) == {"tax_id", "email", "phone", "city_key"}
    with caplog.at_level(logging.WARNING), match_workspace(con, TRUST) as ws:
        train_model(ws, "test", settings, seed=1)
    warned = " ".join(r.getMessage() for r in caplog.records)
    for unmapped in ("tax_id", "email", "phone", "city_key"):
        assert unmapped not in warned


def test_the_nightly_run_refuses_a_model_trained_under_other_settings(config_dir, tmp_path):
    import dagster as dg

    from custpipe.defs.consolidate import matcher
    from custpipe.settings import Settings

    config = config_dir
    edit(config / "pipeline.yaml", "    phone: exact\n", "    phone: {method: id}\n")
    settings = Settings(config_dir=config, data_dir=tmp_path / "data",
                        expectations_dir=tmp_path / "expectations")  # fmt: skip
    with pytest.raises(dg.Failure) as refused:
        matcher(load_config(config), settings)
    assert "'phone' is compared differently" in str(refused.value.description)
    assert "custpipe train-model" in str(refused.value.description)
    assert matcher(load_config(DEFAULT_CONFIG_DIR), Settings.from_env()).model is not None

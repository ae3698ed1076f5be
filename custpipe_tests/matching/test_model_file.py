"""Loading the match model file: every broken file is a clear error naming it and the fix."""

from __future__ import annotations

import copy
import json
import os

import pytest

from custpipe.matching.model import MatchModel
from custpipe.settings import DEFAULT_CONFIG_DIR

GOOD = json.loads((DEFAULT_CONFIG_DIR / "match_model.json").read_text(encoding="utf-8"))


def _without(path: tuple, body: dict | None = None) -> dict:
    """The committed model with the key at `path` removed."""
    body = copy.deepcopy(body or GOOD)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return body


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("custpipe", "trained_records"), "custpipe.trained_records"),
        (("custpipe", "trained_on"), "custpipe.trained_on"),
        (("splink", "comparisons"), "splink.comparisons"),
        (("splink", "probability_two_random_records_match"), "probability_two_random_records"),
        (("splink", "comparisons", 0, "output_column_name"), "output_column_name"),
        (("splink", "comparisons", 0, "comparison_levels"), "comparison_levels"),
    ],
)
def test_a_model_file_missing_a_key_names_the_file_the_key_and_train_model(tmp_path, path, named):
    model = tmp_path / "match_model.json"
    model.write_text(json.dumps(_without(path)), encoding="utf-8")
    with pytest.raises(ValueError) as caught:
        MatchModel.load(model)
    message = str(caught.value)
    assert str(model) in message and named in message
    assert "custpipe train-model" in message


@pytest.mark.parametrize(
    "body",
    [
        {"custpipe": {"trained_records": "many", "trained_on": "x"}, "splink": {}},
        {"custpipe": [], "splink": {}},
        {"custpipe": GOOD["custpipe"], "splink": {"comparisons": "name_key"}},
    ],
    ids=["records-not-a-number", "custpipe-not-an-object", "comparisons-not-a-list"],
)
def test_a_model_file_of_the_wrong_types_is_a_clear_error(tmp_path, body):
    model = tmp_path / "match_model.json"
    model.write_text(json.dumps(body), encoding="utf-8")
    with pytest.raises(ValueError, match=r"match_model\.json.*custpipe train-model"):
        MatchModel.load(model)


@pytest.mark.parametrize("content", [b'{"splink": ', b"", None], ids=["cut", "empty", "random"])
def test_a_corrupt_model_file_names_the_file_and_train_model(tmp_path, content):
    model = tmp_path / "match_model.json"
    model.write_bytes(os.urandom(4096) if content is None else content)
    with pytest.raises(ValueError) as caught:
        MatchModel.load(model)
    message = str(caught.value)
    assert str(model) in message and "custpipe train-model" in message


def test_the_committed_model_still_loads():
    model = MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")
    assert model.trained_records == GOOD["custpipe"]["trained_records"]
    assert model.splink["comparisons"][0]["output_column_name"] == "name_key"


def test_mdm_match_records_keeps_every_column_of_the_match_input():
    import duckdb

    from custpipe.catalogue import table
    from custpipe.matching.model import MATCH_COLUMNS, MATCH_INPUT_SQL

    staged = table("staging.customers")
    columns = ", ".join(f"NULL::{c.type} AS {c.name}" for c in staged.columns)
    made = duckdb.connect().sql(
        MATCH_INPUT_SQL.replace("{nodes}", f"(SELECT 1 AS node, {columns})")
    )
    assert tuple(made.columns) == ("unique_id", *MATCH_COLUMNS)
    kept = {c.name: c.type for c in table("mdm.match_records").columns}
    assert {c: kept.get(c) for c in MATCH_COLUMNS} == dict.fromkeys(MATCH_COLUMNS, "VARCHAR")

"""Two person registers, configured by mapping files only, match well after training.

No demo generator and no code change: the sources carry given name, surname, address,
postcode, birth date and an ID number; the model is trained on them (the explicit training
step), then consolidation runs with the saved model.
"""

import duckdb
import numpy as np
import pandas as pd
import yaml
from faker import Faker

from custpipe.config import SourceConfig
from custpipe.mapping.canonical import stage_customers
from custpipe.matching.consolidate import Matcher, consolidate
from custpipe.matching.evaluate import evaluate_matches
from custpipe.matching.model import MatchModel, train_model
from custpipe.matching.workspace import match_workspace
from custpipe.warehouse import DDL, append_rows

REGISTER_A = """
trust: 1
customers:
  reader: {kind: csv, path: "{sources}/a.csv"}
  id: nr
  fields:
    party_type: {const: person}
    name: {concat: [nachname, vorname], sep: ", "}
    given_name: vorname
    family_name: nachname
    street: strasse
    postal_code: plz
    country: {const: DE}
    birth_date: {column: geburtsdatum, date_format: "%d.%m.%Y"}
    national_id: ausweisnr
"""
REGISTER_B = """
trust: 2
customers:
  reader: {kind: csv, path: "{sources}/b.csv"}
  id: id
  fields:
    party_type: {const: person}
    name: {concat: [first_name, last_name], sep: " "}
    given_name: first_name
    family_name: last_name
    street: address
    postal_code: zip
    country: {const: Germany}
    birth_date: {column: dob, date_format: "%Y-%m-%d"}
    national_id: id_number
"""


def _typo(text: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(0, len(text) - 1))
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def registers(n: int, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Register A holds every person, B about half of them with typos and gaps."""
    fake, rng = Faker("de_DE"), np.random.default_rng(seed)
    Faker.seed(seed)
    people = pd.DataFrame(
        {
            "given": [fake.first_name() for _ in range(n)],
            "family": [fake.last_name() for _ in range(n)],
            "street": [fake.street_address() for _ in range(n)],
            "zip": [fake.postcode() for _ in range(n)],
            "dob": [fake.date_of_birth(minimum_age=18, maximum_age=90) for _ in range(n)],
            "id_no": [f"{rng.integers(10**10, 10**11)}" for _ in range(n)],
        }
    )
    a = pd.DataFrame(
        {
            "nr": [f"A{i:05d}" for i in range(n)],
            "vorname": people["given"],
            "nachname": people["family"],
            "strasse": people["street"],
            "plz": people["zip"],
            "geburtsdatum": [d.strftime("%d.%m.%Y") for d in people["dob"]],
            "ausweisnr": people["id_no"],
        }
    )
    in_b = np.flatnonzero(rng.random(n) < 0.5)
    b = people.iloc[in_b].reset_index(drop=True)
    typo = rng.random(len(b))
    b = pd.DataFrame(
        {
            "id": [f"B{i:05d}" for i in range(len(b))],
            "first_name": b["given"],
            "last_name": [
                _typo(v, rng) if t < 0.2 and len(v) > 3 else v
                for v, t in zip(b["family"], typo, strict=True)
            ],
            "address": [_typo(v, rng) if rng.random() < 0.1 else v for v in b["street"]],
            "zip": b["zip"],
            "dob": [d.isoformat() for d in b["dob"]],
            "id_number": [None if rng.random() < 0.2 else v for v in b["id_no"]],
        }
    )
    truth = pd.concat(
        [
            pd.DataFrame(
                {
                    "source_system": "register_a",
                    "source_id": a["nr"],
                    "entity_id": np.arange(n).astype(str),
                }
            ),
            pd.DataFrame(
                {"source_system": "register_b", "source_id": b["id"], "entity_id": in_b.astype(str)}
            ),
        ],
        ignore_index=True,
    )
    return a, b, truth


def test_two_person_registers_match_with_mapping_files_only():
    a, b, truth = registers(600)
    con = duckdb.connect()
    con.execute(DDL)
    for name, text, raw in (("register_a", REGISTER_A, a), ("register_b", REGISTER_B, b)):
        source = SourceConfig.model_validate(yaml.safe_load(text) | {"name": name})
        staged, issues = stage_customers(raw.astype(object), source)
        assert not issues, issues
        append_rows(con, "staging.customers", staged)
    append_rows(
        con,
        "quality.validation_runs",
        pd.DataFrame(
            {
                "run_id": "v1",
                "source_system": ["register_a", "register_b"],
                "validated_at": pd.Timestamp("2026-11-27"),
            }
        ),
    )
    trust = {"register_a": 1, "register_b": 2}
    with match_workspace(con, trust) as ws:
        model = train_model(ws, "test", seed=1)  # the explicit training step
    assert model.trained_records == len(a) + len(b)
    trained = MatchModel(model.splink, model.trained_records, model.trained_on)
    result = consolidate(con, "r1", trust, "register_a", Matcher(trained))
    xref = con.execute("SELECT source_system, source_id, golden_id FROM mdm.customer_xref").df()
    quality = evaluate_matches(xref, truth)
    assert quality.precision >= 0.98 and quality.recall >= 0.95, quality.as_dict()
    assert result.golden == xref["golden_id"].nunique()
    comparisons = {c["output_column_name"] for c in model.splink["comparisons"]}
    assert {"birth_date", "national_id", "name_key", "street_key", "postal_code"} <= comparisons

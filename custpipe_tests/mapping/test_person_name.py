"""A person source may map given_name and/or family_name without `name`: staging derives the
name ('Given Family'), and the staged suite's name rules pass on it."""

from __future__ import annotations

import pandas as pd
import pytest

from custpipe.config import ConfigError, SourceConfig, load_source
from custpipe.mapping.canonical import stage_customers
from custpipe.quality.gx_runner import validate_frame
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR

PERSONS = {
    "name": "persons",
    "customers": {
        "reader": {"kind": "csv", "path": "persons.csv"},
        "id": "rec_id",
        "fields": {
            "given_name": "given_name",
            "family_name": "surname",
            "postal_code": "postcode",
            "country": {"const": "AU"},
        },
    },
}


def raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rec_id": ["r1", "r2", "r3", "r4"],
            "given_name": ["  anna ", "Ben", None, None],
            "surname": ["Berg", None, "Roth", None],
            "postcode": ["2000", "2000", "3000", "3000"],
        },
        dtype=object,
    )


def test_a_person_source_without_name_stages_given_family():
    source = SourceConfig.model_validate(PERSONS)
    staged, issues = stage_customers(raw(), source)
    staged = staged.set_index("source_id")
    assert not issues
    assert staged["name"].tolist() == ["anna Berg", "Ben", "Roth", None]
    assert staged.loc[["r1", "r2", "r3"], "party_type"].tolist() == ["person"] * 3
    # the person key is built from the derived name, as for a mapped one
    assert staged.loc["r1", "name_key"] is not None
    mapped = SourceConfig.model_validate(
        PERSONS
        | {
            "customers": PERSONS["customers"]
            | {"fields": PERSONS["customers"]["fields"] | {"name": "full"}}
        }
    )
    with_name, _ = stage_customers(raw().assign(full=["anna Berg", "Ben", "Roth", None]), mapped)
    assert staged["name_key"].tolist() == with_name["name_key"].tolist()


def test_the_staged_suite_passes_on_derived_names(tmp_path):
    source = SourceConfig.model_validate(PERSONS)
    staged, _ = stage_customers(raw().iloc[:3], source)
    outcome = validate_frame(
        staged,
        "staged_customers",
        expectations_dir=EXPECTATIONS_DIR,
        gx_dir=tmp_path / "gx",
        build_docs=False,
    )
    by_rule = {o.rule: o for o in outcome.outcomes}
    for rule in ("name_mostly_present", "name_required", "name_key_required", "party_type_known"):
        assert by_rule[rule].success, rule
    assert not outcome.blocked and not outcome.quarantine_ids


def test_a_record_without_any_name_is_quarantined_by_the_suite(tmp_path):
    source = SourceConfig.model_validate(PERSONS)
    staged, _ = stage_customers(raw(), source)
    outcome = validate_frame(
        staged,
        "staged_customers",
        expectations_dir=EXPECTATIONS_DIR,
        gx_dir=tmp_path / "gx",
        build_docs=False,
    )
    assert outcome.quarantine_ids == {"r4"}  # neither given nor family name: no name at all


def test_a_source_mapping_no_name_at_all_is_refused_naming_file_and_fix(tmp_path):
    path = tmp_path / "persons.yaml"
    path.write_text(
        "customers:\n"
        "  reader: {kind: csv, path: persons.csv}\n"
        "  id: rec_id\n"
        "  fields: {city: town}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_source(path)
    msg = str(err.value)
    assert "persons.yaml" in msg and "customers.fields: no name is mapped" in msg
    assert "map 'name'" in msg and "'given_name' and/or 'family_name'" in msg


def test_requiring_an_unmapped_derived_name_says_what_to_require():
    config = PERSONS | {"customers": PERSONS["customers"] | {"required": ["name"]}}
    with pytest.raises(ValueError, match=r"\['name'\] are not mapped.*derived from given_name"):
        SourceConfig.model_validate(config)

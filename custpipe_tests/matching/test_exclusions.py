"""Different valid tax IDs (or national IDs) never link automatically; the pair is reviewed."""

import json

import pytest

from custpipe.matching.consolidate import Matcher
from custpipe.matching.decisions import record_decision
from custpipe.standardize.national_ids import national_id_valid
from custpipe_tests.matching.test_consolidate import MODEL, load, run


@pytest.fixture
def con(empty_warehouse):
    return empty_warehouse


SHARED = "finance@group-holding.example"
# seven firms of one group: seven valid tax IDs of their own, one shared e-mail address
FIRMS = [
    {
        "source_system": "erp",
        "source_id": f"K{i}",
        "name": f"Firm {name} GmbH",
        "name_key": f"firm {name}",
        "tax_id": f"DE{900_000_000 + i}",
        "tax_id_valid": True,
        "email": SHARED,
        "email_valid": True,
        "postal_code": f"1011{i}",
    }
    for i, name in enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"])
]


def golden_of(con) -> dict[str, str]:
    rows = con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall()
    return dict(rows)


def test_seven_firms_sharing_an_email_with_different_valid_tax_ids_stay_seven(con):
    load(con, FIRMS)
    result = run(con, "r1")
    golden = golden_of(con)
    assert len(set(golden.values())) == 7
    assert result.golden == 7
    review = con.execute("SELECT * FROM mdm.match_review").df()
    kept = [json.loads(e) for e in review["explanation"]]
    assert len(review) == 6  # every left-out link (the e-mail rule's 6) goes to the steward
    assert all(e["kept_apart"] == "different valid tax IDs" for e in kept)
    assert all(e["linked_by"] == "same_email" for e in kept)
    reviewed = set(review["left_source_id"]) | set(review["right_source_id"])
    assert reviewed == {f"K{i}" for i in range(7)}


def test_the_same_firms_link_when_exclusions_are_switched_off(con):
    load(con, FIRMS)
    run(con, "r1", Matcher(MODEL, 0.99, 0.8, exclusions=()))
    assert len(set(golden_of(con).values())) == 1


def test_a_record_without_tax_id_joins_one_side_not_both(con):
    # K0 and K1 differ in tax ID; X shares the e-mail with both: one golden record may hold X,
    # never K0 and K1 together
    rows = FIRMS[:2] + [
        {
            "source_system": "crm",
            "source_id": "X",
            "name": "Group Holding",
            "name_key": "group holding",
            "email": SHARED,
            "email_valid": True,
        }
    ]
    load(con, rows)
    run(con, "r1")
    golden = golden_of(con)
    assert golden["K0"] != golden["K1"]
    assert golden["X"] in (golden["K0"], golden["K1"])


def test_an_invalid_tax_id_does_not_keep_records_apart(con):
    rows = [dict(FIRMS[0]), dict(FIRMS[1], tax_id="DE12", tax_id_valid=False)]
    load(con, rows)
    run(con, "r1")
    golden = golden_of(con)
    assert golden["K0"] == golden["K1"]


def test_a_steward_must_link_overrides_the_exclusion(con):
    load(con, FIRMS[:2])
    record_decision(con, "erp:K0", "erp:K1", "must_link", "steward", "one firm, tax ID changed")
    run(con, "r1")
    golden = golden_of(con)
    assert golden["K0"] == golden["K1"]
    assert con.execute("SELECT count(*) FROM mdm.match_review").fetchone()[0] == 0


PERSON = {
    "party_type": "person",
    "country": "NL",
    "email": "j.jansen@example.nl",
    "email_valid": True,
    "postal_code": "1011AB",
}


def test_different_valid_national_ids_keep_two_people_apart(con):
    assert national_id_valid("NL", "111222333") and national_id_valid("NL", "123456782")
    rows = [
        PERSON | {"source_system": "erp", "source_id": "P1", "name": "Jan Jansen",
                  "name_key": "jan jansen", "national_id": "111222333"},
        PERSON | {"source_system": "crm", "source_id": "P2", "name": "Jan Jansen",
                  "name_key": "jan jansen", "national_id": "1234.56.782"},
    ]  # fmt: skip
    load(con, rows)
    run(con, "r1")
    golden = golden_of(con)
    assert golden["P1"] != golden["P2"]
    review = con.execute("SELECT explanation FROM mdm.match_review").fetchall()
    assert json.loads(review[0][0])["kept_apart"] == "different valid national IDs"


def test_national_ids_without_a_checksum_rule_do_not_keep_people_apart(con):
    # a typo in an ID no checksum can verify (here: an 8-digit number under NL's 9-digit BSN)
    rows = [
        PERSON | {"source_system": "erp", "source_id": "P1", "name": "Jan Jansen",
                  "name_key": "jan jansen", "national_id": "11122233"},
        PERSON | {"source_system": "crm", "source_id": "P2", "name": "Jan Jansen",
                  "name_key": "jan jansen", "national_id": "11122234"},
    ]  # fmt: skip
    load(con, rows)
    run(con, "r1")
    golden = golden_of(con)
    assert golden["P1"] == golden["P2"]
    assert not national_id_valid("NL", "11122233")

"""Different valid tax IDs (or national IDs) never link automatically; the pair is reviewed."""

import json

import pytest

from custpipe.config import load_config
from custpipe.matching.consolidate import Matcher, load_matcher
from custpipe.matching.decisions import constrained_components, record_decision
from custpipe.matching.exclusions import conflict
from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe.standardize.national_ids import national_id_valid
from custpipe_tests.conftest import edit
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
        "tax_id": f"DE{(i + 1) * 111_111_111}",  # far apart: not one typo of another
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
    assert all(e["kept_apart"] == "would join different valid tax IDs" for e in kept)
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
    assert json.loads(review[0][0])["kept_apart"] == "would join different valid national IDs"


def test_national_ids_that_are_not_valid_do_not_keep_people_apart(con):
    # an 8-digit number under NL's 9-digit BSN: not a valid ID, no evidence of two people
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


def test_us_social_security_numbers_never_keep_people_apart():
    # the SSN carries no check digit: a typo of one is as 'valid' as the number itself
    assert not national_id_valid("US", "536-90-4399")
    assert not national_id_valid("DK", "2110625629")  # CPR check digit dropped in 2007


def test_valid_ids_one_typo_apart_do_not_keep_records_apart(con):
    # US EINs carry no check digit: one digit off, or two neighbours swapped, is one firm
    rows = [
        dict(FIRMS[0], tax_id="US123456789"),
        dict(FIRMS[1], tax_id="US123456788"),  # one digit off
        dict(FIRMS[2], tax_id="US123456798"),  # the last two swapped
    ]
    load(con, rows)
    run(con, "r1")
    assert len(set(golden_of(con).values())) == 1
    assert not conflict({"US123456789"}, {"US123456788", "US123456798"})
    assert conflict({"US123456789"}, {"US987654321"})


def test_steward_must_links_join_records_whatever_a_third_record_holds(con):
    # K0 and C0 share a tax ID, K1 has another; all three share the e-mail. The steward says
    # K0 = K1 and K0 = C0: one customer, although C0 and K1 differ in tax ID
    rows = [FIRMS[0], FIRMS[1], dict(FIRMS[0], source_system="crm", source_id="C0")]
    load(con, rows)
    record_decision(con, "erp:K0", "erp:K1", "must_link", "ann", "tax ID re-registered")
    record_decision(con, "erp:K0", "crm:C0", "must_link", "ann", "same firm")
    run(con, "r1")
    assert len(set(golden_of(con).values())) == 1
    assert con.execute("SELECT count(*) FROM mdm.match_review").fetchone()[0] == 0


def test_exclusions_switched_off_in_pipeline_yaml_reach_the_matcher(config_dir):
    config = config_dir
    edit(config / "pipeline.yaml", "exclusions: [tax_id, national_id]", "exclusions: []")
    cfg = load_config(config)
    matcher = load_matcher(config / "match_model.json", 0.99, 0.8, cfg.match_settings())
    assert matcher.exclusions == ()
    default = load_config(DEFAULT_CONFIG_DIR).match_settings()
    assert load_matcher(config / "match_model.json", 0.99, 0.8, default).exclusions == (
        "tax_id",
        "national_id",
    )


def test_a_large_cluster_of_conflicting_tax_ids_splits_without_pairwise_work():
    # 20,000 firms behind one bookkeeper's e-mail (a star of links), each with a tax ID of its
    # own: the check keeps each part's identifier values, never the 200 million pairs
    n = 20_000
    nodes = list(range(1, n + 1))
    edges = [(1, node, 2) for node in nodes[1:]]
    ids = {node: {"tax_id": f"T{node * 7919:012d}"} for node in nodes}
    skipped: list = []
    labels = constrained_components(nodes, edges, [], skipped, ids, overriding=0)
    assert len(set(labels.values())) == n
    assert len(skipped) == n - 1
    assert {why for _, _, why in skipped} == {"would join different valid tax IDs"}
    # the same star as steward must-links (priority 0 = overriding) joins them all
    must = [(a, b, 0) for a, b, _ in edges]
    assert len(set(constrained_components(nodes, must, [], None, ids, 0).values())) == 1

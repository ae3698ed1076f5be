import json

import duckdb
import pandas as pd
import pytest

from custpipe.matching.consolidate import consolidate
from custpipe.warehouse import DDL, append_rows

TRUST = {"erp": 1, "crm": 2, "sales": 3}


def staged(rows: list[dict]) -> pd.DataFrame:
    base = {
        "party_type": "company",
        "country": "DE",
        "is_deleted": False,
        "tax_id_valid": None,
        "email_valid": None,
        "phone_valid": None,
        "postal_code_valid": True,
        "source_updated_at": pd.Timestamp("2026-01-01"),
    }
    return pd.DataFrame([base | r for r in rows])


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute(DDL)
    yield c
    c.close()


def load(con, rows, quarantined=()):
    con.execute(
        "DELETE FROM staging.customers; DELETE FROM quality.quarantine; "
        "DELETE FROM quality.validation_runs"
    )
    append_rows(con, "staging.customers", staged(rows))
    append_rows(
        con,
        "quality.validation_runs",
        pd.DataFrame(
            [
                {"run_id": "v1", "source_system": s, "validated_at": pd.Timestamp("2026-01-01")}
                for s in TRUST
            ]
        ),
    )
    append_rows(
        con,
        "quality.quarantine",
        pd.DataFrame(
            [
                {"source_system": s, "source_id": i, "rule": "r", "run_id": "v1"}
                for s, i in quarantined
            ],
            columns=["source_system", "source_id", "rule", "run_id"],
        ),
    )


ROWS = [
    # one company in three systems, linked transitively: tax id (erp-crm), name+postcode (crm-sales)
    {
        "source_system": "erp",
        "source_id": "K1",
        "name": "Müller GmbH",
        "name_key": "mueller",
        "tax_id": "DE1",
        "tax_id_valid": True,
        "postal_code": "10115",
        "phone": None,
    },
    {
        "source_system": "crm",
        "source_id": "C1",
        "name": "Mueller G.m.b.H.",
        "name_key": "mueller",
        "tax_id": "DE1",
        "tax_id_valid": True,
        "postal_code": "10117",
        "phone": "+49301234567",
        "phone_valid": True,
        "segment": "B",
        "source_updated_at": pd.Timestamp("2026-06-01"),
    },
    {
        "source_system": "sales",
        "source_id": "S1",
        "name": "Mueller",
        "name_key": "mueller",
        "postal_code": "10117",
        "segment": "C",
    },
    # an unrelated customer
    {
        "source_system": "erp",
        "source_id": "K2",
        "name": "Acme Inc.",
        "name_key": "acme",
        "country": "US",
        "postal_code": "10001",
        "email": "a@acme.com",
        "email_valid": True,
    },
    # a person that only shares an invalid e-mail with K2: no link
    {
        "source_system": "crm",
        "source_id": "C2",
        "party_type": "person",
        "name": "Jo Doe",
        "name_key": "doejo",
        "email": "a@acme.com",
        "email_valid": False,
    },
]


def test_transitive_links_one_golden_record_with_survivorship(con):
    assert consolidate(con, "run0", TRUST, "erp").golden == 0  # empty input is fine
    load(con, ROWS)
    result = consolidate(con, "run1", TRUST, "erp")
    assert (result.records, result.golden, result.merged_records) == (5, 3, 2)
    xref = con.execute("SELECT source_id, golden_id, match_rule FROM mdm.customer_xref").df()
    gid = xref.set_index("source_id")["golden_id"]
    assert gid["K1"] == gid["C1"] == gid["S1"] and len({gid["K1"], gid["K2"], gid["C2"]}) == 3
    rules = xref.set_index("source_id")["match_rule"]
    assert rules["K1"] == "same_tax_id" and rules["S1"] == "same_name_postcode"
    assert rules["K2"] == "singleton"
    g = (
        con.execute("SELECT * FROM mdm.golden_customers WHERE golden_id = ?", [gid["K1"]])
        .df()
        .iloc[0]
    )
    assert g["name"] == "Müller GmbH"  # the ERP is trusted most
    assert g["phone"] == "+49301234567"  # only the CRM has one
    assert g["segment"] == "B"  # CRM outranks sales
    assert g["erp_customer_number"] == "K1" and g["member_count"] == 3
    assert g["sources"] == "crm,erp,sales"
    assert json.loads(g["attribute_sources"])["phone"] == "crm:C1"


def test_ids_are_stable_and_quarantined_records_leave(con):
    load(con, ROWS)
    consolidate(con, "run1", TRUST, "erp")
    first = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    load(con, ROWS, quarantined=[("erp", "K2")])
    consolidate(con, "run2", TRUST, "erp")
    second = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert "K2" not in second
    assert all(second[k] == first[k] for k in second)
    events = con.execute(
        "SELECT event, golden_id FROM mdm.golden_id_history WHERE run_id = 'run2'"
    ).fetchall()
    assert events == [("retired", first["K2"])]


def test_similar_names_that_no_rule_linked_go_to_review_with_an_explanation(con):
    rows = [
        {
            "source_system": "erp",
            "source_id": "K7",
            "name_key": "aumannmedizintechnik",
            "postal_code": "13217",
            "phone": "+49303926960",
            "phone_valid": False,
        },
        {
            "source_system": "crm",
            "source_id": "C7",
            "name_key": "aumaannmedizintechnik",
            "postal_code": "13217",
            "phone": "+49303926960",
            "phone_valid": False,
        },
        # same name, but valid and different tax ids: told apart, never reviewed
        {
            "source_system": "erp",
            "source_id": "K8",
            "name_key": "aumannmedizintechnik",
            "tax_id": "DE1",
            "tax_id_valid": True,
            "postal_code": "99999",
        },
        {
            "source_system": "crm",
            "source_id": "C8",
            "name_key": "aumannmedizintechnik",
            "tax_id": "DE2",
            "tax_id_valid": True,
            "postal_code": "88888",
        },
    ]
    load(con, rows)
    result = consolidate(con, "run1", TRUST, "erp")
    review = con.execute("SELECT * FROM mdm.match_review ORDER BY score DESC").df()
    assert result.review_pairs == len(review)
    top = review.iloc[0]
    assert (top.left_source_id, top.right_source_id) == ("C7", "K7")
    explanation = json.loads(top.explanation)
    assert explanation["postal_code"] == "agree" and explanation["phone"] == "agree"
    assert explanation["tax_id"] == "missing" and 0.95 < explanation["name_similarity"] < 1
    assert top.score > 0.9 and top.run_id == "run1"
    pairs = set(zip(review.left_source_id, review.right_source_id, strict=True))
    assert ("C8", "K8") not in pairs


def test_steward_decisions_must_link_and_cannot_link_across_a_chain(con):
    from custpipe.matching.decisions import record_decision

    rows = [  # a chain: A -(tax)- B -(email)- C ; D alone
        {
            "source_system": "erp",
            "source_id": "A",
            "name_key": "a",
            "tax_id": "DE1",
            "tax_id_valid": True,
            "postal_code": "1",
        },
        {
            "source_system": "crm",
            "source_id": "B",
            "name_key": "b",
            "tax_id": "DE1",
            "tax_id_valid": True,
            "email": "x@y.de",
            "email_valid": True,
            "postal_code": "2",
        },
        {
            "source_system": "sales",
            "source_id": "C",
            "name_key": "c",
            "email": "x@y.de",
            "email_valid": True,
            "postal_code": "3",
        },
        {"source_system": "sales", "source_id": "D", "name_key": "d", "postal_code": "4"},
    ]
    load(con, rows)
    consolidate(con, "run1", TRUST, "erp")
    gid = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert gid["A"] == gid["B"] == gid["C"] != gid["D"]
    record_decision(con, "erp:A", "sales:C", "cannot_link", "ann", "different companies")
    record_decision(con, "sales:D", "erp:A", "must_link", "ann", "same VAT in the contract")
    result = consolidate(con, "run2", TRUST, "erp")
    gid2 = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    # the tax link (stronger) keeps A with B; the e-mail link to C is cut; D joins A
    assert gid2["A"] == gid2["B"] == gid2["D"] != gid2["C"]
    assert gid2["A"] == gid["A"]  # the larger part keeps the golden ID
    assert (result.must_links, result.cannot_link_splits) == (1, 1)
    rules = dict(con.execute("SELECT source_id, match_rule FROM mdm.customer_xref").fetchall())
    assert "steward_must_link" in rules["D"]
    # a later decision on the same pair wins
    record_decision(con, "sales:C", "erp:A", "must_link", "bob", "checked the contract again")
    consolidate(con, "run3", TRUST, "erp")
    gid3 = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert len(set(gid3.values())) == 1


def test_a_decision_needs_who_and_why(con):
    from custpipe.matching.decisions import record_decision

    with pytest.raises(ValueError, match="who made it"):
        record_decision(con, "erp:A", "crm:B", "cannot_link", "", "")
    with pytest.raises(ValueError, match="source_system:source_id"):
        record_decision(con, "A", "crm:B", "cannot_link", "ann", "x")


def test_a_shared_role_address_does_not_link_two_firms(con):
    rows = [
        {
            "source_system": "erp",
            "source_id": "M1",
            "name_key": "masonchemicals",
            "postal_code": "60653",
            "email": "contact@mason-chemicals.com",
            "email_valid": True,
        },
        {
            "source_system": "crm",
            "source_id": "M2",
            "name_key": "masonchemicals",
            "postal_code": "90038",
            "email": "contact@mason-chemicals.com",
            "email_valid": True,
        },
        {
            "source_system": "erp",
            "source_id": "P1",
            "party_type": "person",
            "name_key": "doejo",
            "postal_code": "1",
            "email": "jo.doe@mail.de",
            "email_valid": True,
        },
        {
            "source_system": "crm",
            "source_id": "P2",
            "party_type": "person",
            "name_key": "doejo",
            "postal_code": "2",
            "email": "jo.doe@mail.de",
            "email_valid": True,
        },
    ]
    load(con, rows)
    consolidate(con, "run1", TRUST, "erp")
    gid = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert gid["M1"] != gid["M2"]  # two firms of one name, one generic address
    assert gid["P1"] == gid["P2"]  # a personal address still links

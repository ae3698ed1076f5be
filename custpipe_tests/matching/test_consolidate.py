import json

import pandas as pd
import pytest

from custpipe.matching.consolidate import Matcher, consolidate
from custpipe.matching.model import MatchModel
from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe.warehouse import append_rows

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


MODEL = MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")  # the committed model
MATCHER = Matcher(MODEL, auto_merge=0.99, review=0.8)


def run(con, run_id, matcher=MATCHER):
    return consolidate(con, run_id, TRUST, "erp", matcher)


@pytest.fixture
def con(empty_warehouse):
    return empty_warehouse


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
    assert run(con, "run0").golden == 0  # empty input is fine
    load(con, ROWS)
    result = run(con, "run1")
    assert (result.records, result.golden, result.merged_records) == (5, 3, 2)
    xref = con.execute("SELECT source_id, golden_id, match_rule FROM mdm.customer_xref").df()
    gid = xref.set_index("source_id")["golden_id"]
    assert gid["K1"] == gid["C1"] == gid["S1"] and len({gid["K1"], gid["K2"], gid["C2"]}) == 3
    rules = xref.set_index("source_id")["match_rule"]
    assert "same_tax_id" in rules["K1"].split(",") and rules["S1"] == "model"
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
    run(con, "run1")
    first = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    load(con, ROWS, quarantined=[("erp", "K2")])
    run(con, "run2")
    second = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert "K2" not in second
    assert all(second[k] == first[k] for k in second)
    events = con.execute(
        "SELECT event, golden_id FROM mdm.golden_id_history WHERE run_id = 'run2'"
    ).fetchall()
    assert events == [("retired", first["K2"])]


REVIEW_ROWS = [
    # K7 ~ C7: near-identical name, same postcode and phone -> certain
    {
        "source_system": "erp",
        "source_id": "K7",
        "name_key": "aumannmedizintechnik",
        "postal_code": "13217",
        "city": "Berlin",
        "phone": "+49303926960",
        "phone_valid": True,
    },
    {
        "source_system": "crm",
        "source_id": "C7",
        "name_key": "aumaannmedizintechnik",
        "postal_code": "13217",
        "city": "Berlin",
        "phone": "+49303926960",
        "phone_valid": True,
    },
    # S7: the same name, another postcode of the city -> uncertain
    {
        "source_system": "sales",
        "source_id": "S7",
        "name_key": "aumannmedizintechnik",
        "postal_code": "13218",
        "city": "Berlin",
    },
    # K8 / C8: one name, two valid and different tax IDs -> told apart, never reviewed
    {
        "source_system": "erp",
        "source_id": "K8",
        "name_key": "aumanmedizintechnik",
        "postal_code": "99999",
        "tax_id": "DE1",
        "tax_id_valid": True,
        "city": "Hamburg",
    },
    {
        "source_system": "crm",
        "source_id": "C8",
        "name_key": "aumanmedizintechnik",
        "postal_code": "88888",
        "tax_id": "DE2",
        "tax_id_valid": True,
        "city": "Hamburg",
    },
    # K9 ~ C9: same name and postcode, different streets -> very likely
    {
        "source_system": "erp",
        "source_id": "K9",
        "name_key": "brandtlogistik",
        "postal_code": "50667",
        "city": "Köln",
        "street": "Hohe Str. 1",
    },
    {
        "source_system": "crm",
        "source_id": "C9",
        "name_key": "brandtlogistik",
        "postal_code": "50667",
        "city": "Köln",
        "street": "Schildergasse 9",
    },
]


def _scored_pairs(con) -> dict[tuple[str, str], float]:
    from custpipe.matching.model import score_pairs
    from custpipe.matching.workspace import match_workspace

    with match_workspace(con, TRUST) as ws:
        score_pairs(ws, MODEL, 0.0001)
        scored = con.execute(f"""
            SELECT na.source_id, nb.source_id, s.probability FROM {ws.scored} s
            JOIN {ws.nodes} na ON na.node = s.a JOIN {ws.nodes} nb ON nb.node = s.b
        """).fetchall()
    return {tuple(sorted((a, b))): p for a, b, p in scored}


@pytest.mark.parametrize(("auto_merge", "review"), [(0.99, 0.5), (0.9999999, 0.5)])
def test_the_review_queue_holds_exactly_the_pairs_between_the_thresholds(con, auto_merge, review):
    load(con, REVIEW_ROWS)
    scores = _scored_pairs(con)
    result = run(con, "run1", Matcher(MODEL, auto_merge=auto_merge, review=review))
    gid = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    queue = con.execute("SELECT * FROM mdm.match_review ORDER BY score DESC").df()
    got = {tuple(sorted(p)) for p in zip(queue.left_source_id, queue.right_source_id, strict=True)}
    expected = {
        pair
        for pair, p in scores.items()
        if review <= p < auto_merge and gid[pair[0]] != gid[pair[1]]
    }
    assert got == expected and result.review_pairs == len(queue)
    assert ("K7", "S7") in got  # same name, neighbouring postcode: a steward decides
    assert ("C8", "K8") not in scores or scores[("C8", "K8")] < review  # different tax IDs
    for pair, p in scores.items():  # everything at or above auto_merge is one golden record
        if p >= auto_merge:
            assert gid[pair[0]] == gid[pair[1]]
    assert (("C9", "K9") in got) == (scores[("C9", "K9")] < auto_merge)
    row = queue[queue.right_source_id.isin(["S7", "K7"]) & queue.left_source_id.isin(["K7", "S7"])]
    explanation = json.loads(row.explanation.iloc[0])
    assert explanation["name_key"]["level"].startswith("Exact match")
    assert explanation["postal_code"]["weight"] < 0 < explanation["city_key"]["weight"]
    assert "tax_id" not in explanation  # neither record has one: no evidence either way
    assert "13217" not in row.explanation.iloc[0]  # levels and weights, never values
    assert queue.run_id.eq("run1").all()


def _queued_with_s7(con) -> int:
    sql = "SELECT count(*) FROM mdm.match_review WHERE 'S7' IN (left_source_id, right_source_id)"
    return con.execute(sql).fetchone()[0]


def test_a_decided_pair_leaves_the_review_queue(con):
    from custpipe.matching.decisions import record_decision

    load(con, REVIEW_ROWS)
    queue_from_half = Matcher(MODEL, auto_merge=0.99, review=0.5)
    run(con, "run1", queue_from_half)
    assert _queued_with_s7(con) == 1
    record_decision(con, "sales:S7", "erp:K7", "cannot_link", "ann", "another branch")
    run(con, "run2", queue_from_half)
    assert _queued_with_s7(con) == 0


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
    run(con, "run1")
    gid = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert gid["A"] == gid["B"] == gid["C"] != gid["D"]
    record_decision(con, "erp:A", "sales:C", "cannot_link", "ann", "different companies")
    record_decision(con, "sales:D", "erp:A", "must_link", "ann", "same VAT in the contract")
    result = run(con, "run2")
    gid2 = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    # the tax link (stronger) keeps A with B; the e-mail link to C is cut; D joins A
    assert gid2["A"] == gid2["B"] == gid2["D"] != gid2["C"]
    assert gid2["A"] == gid["A"]  # the larger part keeps the golden ID
    assert (result.must_links, result.cannot_link_splits) == (1, 1)
    rules = dict(con.execute("SELECT source_id, match_rule FROM mdm.customer_xref").fetchall())
    assert "steward_must_link" in rules["D"]
    # a later decision on the same pair wins
    record_decision(con, "sales:C", "erp:A", "must_link", "bob", "checked the contract again")
    run(con, "run3")
    gid3 = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert len(set(gid3.values())) == 1 and gid3["A"] == gid["A"]  # stable over three runs
    # every merge and split is in the history, with where the records went
    history = con.execute(
        "SELECT run_id, event, golden_id, related_golden_id FROM mdm.golden_id_history "
        "WHERE run_id <> 'run1' ORDER BY run_id, event"
    ).fetchall()
    assert history == [
        ("run2", "merged", gid["D"], gid["A"]),  # D's record joined A's cluster
        ("run2", "split", gid2["C"], gid["A"]),  # C left A's cluster with a new ID
        ("run3", "merged", gid2["C"], gid["A"]),  # ... and came back
    ]


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
    run(con, "run1")
    gid = dict(con.execute("SELECT source_id, golden_id FROM mdm.customer_xref").fetchall())
    assert gid["M1"] != gid["M2"]  # two firms of one name, one generic address
    assert gid["P1"] == gid["P2"]  # a personal address still links


def test_survivorship_rules_per_attribute_with_provenance(con):
    from custpipe.matching.survivorship import Survivorship

    common = {"tax_id": "DE1", "tax_id_valid": True, "name_key": "mueller", "country": "DE"}
    rows = [
        common
        | {
            "source_system": "erp",
            "source_id": "K1",
            "name": "Müller GmbH",
            "phone": "+49301111111",
            "phone_valid": True,
            "segment": "A",
            "city": "Berlin",
            "source_updated_at": pd.Timestamp("2026-01-01"),
        },
        common
        | {
            "source_system": "crm",
            "source_id": "C1",
            "name": "Mueller GmbH",
            "phone": "+49302222222",
            "phone_valid": True,
            "segment": "B",
            "street": "Hauptstr. 1",
            "email": "x@",
            "email_valid": False,
            "source_updated_at": pd.Timestamp("2026-06-01"),
        },
        common
        | {
            "source_system": "sales",
            "source_id": "S1",
            "name": "Müller",
            "phone": "+4930333",
            "phone_valid": False,
            "segment": "B",
            "street": "Hauptstraße 1",
            "region": "BE",
            "postal_code": "10115",
            "email": "s@mueller.de",
            "email_valid": True,
            "city": "Berlin-Mitte",
            "source_updated_at": pd.Timestamp("2026-09-01"),
        },
    ]
    load(con, rows)
    rules = Survivorship(
        default=("valid", "trust"),
        attributes={
            "phone": ("valid", "recent", "trust"),  # newest valid: C1 (S1's is invalid)
            "segment": ("frequent", "trust"),  # 'B' twice; of those, the CRM is trusted more
            "street": ("complete", "trust"),  # S1 fills the most attributes
            "city": ("recent",),  # S1 is the newest
        },
    )
    consolidate(con, "run1", TRUST, "erp", MATCHER, survivorship=rules)
    g = con.execute("SELECT * FROM mdm.golden_customers").df()
    assert len(g) == 1
    g = g.iloc[0]
    provenance = json.loads(g["attribute_sources"])
    expected = {
        "name": ("Müller GmbH", "erp:K1"),  # default: the most trusted source
        "email": ("s@mueller.de", "sales:S1"),  # default: valid beats trusted
        "phone": ("+49302222222", "crm:C1"),
        "segment": ("B", "crm:C1"),
        "street": ("Hauptstraße 1", "sales:S1"),
        "city": ("Berlin-Mitte", "sales:S1"),
    }
    for attribute, (value, source) in expected.items():
        assert (g[attribute], provenance[attribute]) == (value, source), attribute


def test_survivorship_rejects_unknown_rules_and_attributes():
    from custpipe.matching.survivorship import Survivorship

    with pytest.raises(ValueError, match="unknown rule"):
        Survivorship(attributes={"phone": ("newest",)})
    with pytest.raises(ValueError, match="unknown attribute"):
        Survivorship(attributes={"fax": ("trust",)})


def test_a_broken_model_file_is_named_with_what_to_do(tmp_path):
    broken = tmp_path / "match_model.json"
    broken.write_text('{"splink": ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"match_model.json: not valid JSON.*retrain"):
        MatchModel.load(broken)
    broken.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="not a custpipe match model"):
        MatchModel.load(broken)


def test_training_without_any_strong_identifier_says_what_is_missing(con):
    from custpipe.matching.model import train_model
    from custpipe.matching.workspace import accepted_nodes

    rows = [  # different names, nothing shared: no duplicate to learn from
        {"source_system": "erp", "source_id": f"K{i}", "name_key": f"firm{i}x{i * 7}"}
        for i in range(60)
    ]
    load(con, rows)
    ws = accepted_nodes(con, TRUST)
    with pytest.raises(ValueError, match="cannot train: no two records"):
        train_model(ws, "test")


def _temp_tables(con) -> set[str]:
    rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    return {r[0] for r in rows}


def test_the_workspace_names_every_relation_of_the_stage_once():
    from custpipe.matching.workspace import MatchWorkspace

    names = MatchWorkspace(con=None, records=0).relations()
    assert {"nodes", "trust", "edges", "labels", "decided", "scored_pairs"} <= set(names)
    assert len(names) == len(set(names))


def test_consolidation_drops_its_temp_relations(con):
    load(con, ROWS)
    assert run(con, "run1").golden == 3
    assert _temp_tables(con) == set()


def test_the_workspace_is_dropped_when_its_block_fails(con):
    from custpipe.matching.workspace import match_workspace

    load(con, ROWS)
    with pytest.raises(ZeroDivisionError), match_workspace(con, TRUST) as ws:
        assert ws.records == 5 and ws.nodes in _temp_tables(con)
        raise ZeroDivisionError
    assert _temp_tables(con) == set()


def test_relations_made_before_the_nodes_query_fails_are_dropped(con):
    import duckdb

    from custpipe.matching.workspace import match_workspace

    load(con, ROWS)
    con.execute("DROP TABLE quality.validation_runs")  # the nodes query reads it
    with (
        pytest.raises(duckdb.CatalogException, match="validation_runs"),
        match_workspace(con, TRUST),
    ):
        pytest.fail("the block must not run when the workspace cannot be built")
    assert _temp_tables(con) == set()  # `trust` was made before the failing query


def test_drop_drops_a_temp_table_of_every_relation_the_workspace_names(con):
    from dataclasses import fields

    from custpipe.matching.workspace import MatchWorkspace

    ws = MatchWorkspace(con, records=0)
    named = {getattr(ws, f.name) for f in fields(ws) if isinstance(getattr(ws, f.name), str)}
    assert set(ws.relations()) == named  # a relation added to the class is listed, too
    for name in ws.relations():
        con.execute(f"CREATE TEMP TABLE {name} (x INTEGER)")
    assert _temp_tables(con) == named
    ws.drop()
    assert _temp_tables(con) == set()

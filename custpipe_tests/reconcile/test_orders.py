import duckdb
import pandas as pd
import pytest

from custpipe.reconcile.orders import find_discrepancies
from custpipe.warehouse import DDL, append_rows


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute(DDL)
    # golden G1 has two ERP records (K1 primary, K2 duplicate) and one sales record S1
    append_rows(
        c,
        "mdm.customer_xref",
        pd.DataFrame(
            {
                "source_system": ["erp", "erp", "sales", "erp"],
                "source_id": ["K1", "K2", "S1", "K3"],
                "golden_id": ["G1", "G1", "G1", "G2"],
            }
        ),
    )
    append_rows(
        c,
        "mdm.golden_customers",
        pd.DataFrame({"golden_id": ["G1", "G2"], "erp_customer_number": ["K1", "K3"]}),
    )
    append_rows(
        c, "staging.customers", pd.DataFrame({"source_system": ["erp"], "source_id": ["KQ"]})
    )
    yield c
    c.close()


def orders(rows):
    frame = pd.DataFrame(
        [r[:7] for r in rows],
        columns=[
            "source_system",
            "source_id",
            "order_number",
            "customer_ref",
            "amount",
            "currency",
            "status",
        ],
    )
    frame["order_date"] = [pd.Timestamp(r[7] if len(r) > 7 else "2026-11-01") for r in rows]
    return frame


def findings(con, rows):
    append_rows(con, "staging.orders", orders(rows))
    out = find_discrepancies(con, "erp", "erp", 0.01)
    return sorted(zip(out["order_id"], out["kind"], strict=True))


def test_agreeing_orders_have_no_finding(con):
    assert (
        findings(
            con,
            [
                ("erp", "1", "1", "K1", 10.0, "EUR", "open"),
                ("sales", "SO-1", "1", "S1", 10.004, "EUR", "open"),
            ],
        )
        == []
    )


def test_each_kind_is_found(con):
    got = findings(
        con,
        [
            ("erp", "1", "1", "K1", 10.0, "EUR", "open"),  # status differs in sales
            ("sales", "SO-1", "1", "S1", 10.0, "EUR", "completed"),
            ("erp", "2", "2", "K1", 10.0, "EUR", "open"),  # amount differs
            ("sales", "SO-2", "2", "S1", 12.5, "EUR", "open"),
            ("sales", "SO-3", "3", "S1", 5.0, "EUR", "open"),  # not in the ERP
            ("erp", "4", "4", "K1", 7.0, "EUR", "open"),  # G1 is a sales customer: missing there
            ("erp", "5", "5", "K2", 7.0, "EUR", "open"),  # on the duplicate customer K2 (+ missing)
            ("sales", "SO-5", "5", "S1", 7.0, "EUR", "open"),
            ("erp", "6", "6", "K9", 1.0, "EUR", "open"),  # unknown customer
            ("erp", "9", "9", "KQ", 1.0, "EUR", "open"),  # customer staged but quarantined
            ("erp", "7", "7", "K3", 1.0, "EUR", "open"),  # G2 has no sales records: no finding
            ("erp", "8a", "8", "K3", 1.0, "EUR", "open"),  # duplicate order number
            ("erp", "8b", "8", "K3", 1.0, "EUR", "open"),
        ],
    )
    assert got == [
        ("1", "status_mismatch"),
        ("2", "amount_mismatch"),
        ("3", "missing_in_erp"),
        ("4", "missing_in_sales"),
        ("5", "duplicate_customer"),
        ("6", "unknown_customer"),
        ("8", "duplicate_order"),
        ("9", "customer_quarantined"),
    ]


def test_currency_difference_is_an_amount_mismatch(con):
    assert findings(
        con,
        [
            ("erp", "1", "1", "K1", 10.0, "EUR", "open"),
            ("sales", "SO-1", "1", "S1", 10.0, "CNY", "open"),
        ],
    ) == [("1", "amount_mismatch")]


def test_orders_without_number_or_with_unmapped_codes_are_findings_not_crashes(con):
    append_rows(
        con,
        "staging.orders",
        pd.DataFrame(
            {
                "source_system": ["erp", "sales"],
                "source_id": ["X1", "SO-9"],
                "order_number": [None, "9"],
                "customer_ref": ["K1", "S1"],
                "amount": [1.0, 2.0],
                "currency": ["EUR", "EUR"],
                "status": ["open", "shipped"],
                "mapping_errors": [None, "crosswalk_covered:status"],
            }
        ),
    )
    out = find_discrepancies(con, "erp", "erp", 0.01)
    got = sorted(zip(out["order_id"], out["kind"], strict=True))
    assert got == [
        ("9", "missing_in_erp"),
        ("9", "unmapped_code"),
        ("erp:X1", "order_number_missing"),
    ]


def test_orders_with_invalid_values_are_invalid_value_findings_not_unmapped_codes(con):
    append_rows(
        con,
        "staging.orders",
        pd.DataFrame(
            {
                "source_system": ["sales", "sales"],
                "source_id": ["SO-7", "SO-8"],
                "order_number": ["7", "8"],
                "customer_ref": ["S1", "S1"],
                "amount": [None, 2.0],
                "currency": ["EUR", "EURO"],
                "status": ["open", "open"],
                "mapping_errors": [
                    "amount_unparseable:amount;crosswalk_covered:status",
                    "currency_unknown:currency",
                ],
            }
        ),
    )
    out = find_discrepancies(con, "erp", "erp", 0.01)
    kinds = sorted(
        (o, k) for o, k in zip(out["order_id"], out["kind"], strict=True) if k != "missing_in_erp"
    )
    assert kinds == [("7", "invalid_value"), ("7", "unmapped_code"), ("8", "invalid_value")]
    fix = out.loc[(out["order_id"] == "8") & (out["kind"] == "invalid_value"), "suggested_fix"]
    assert "ISO 4217" in fix.iloc[0]


def test_orders_with_different_numbers_pair_on_customer_date_and_amount(con):
    got = findings(
        con,
        [
            # the same order keyed twice under different numbers, two days apart: one finding
            ("erp", "10", "10", "K1", 99.0, "EUR", "open", "2026-11-01"),
            ("sales", "SO-X", "X10", "S1", 99.0, "EUR", "open", "2026-11-03"),
            # same customer and amount but 10 days apart: two separate orders, both missing
            ("erp", "11", "11", "K1", 50.0, "EUR", "open", "2026-11-01"),
            ("sales", "SO-Y", "Y11", "S1", 50.0, "EUR", "open", "2026-11-11"),
            # nearest date wins; the other sales order stays missing in the ERP
            ("erp", "12", "12", "K1", 20.0, "EUR", "open", "2026-11-05"),
            ("sales", "SO-A", "A12", "S1", 20.0, "EUR", "open", "2026-11-07"),
            ("sales", "SO-B", "B12", "S1", 20.0, "EUR", "open", "2026-11-06"),
            # another customer (G2 has no sales records) never pairs with G1's orders
            ("erp", "13", "13", "K3", 7.0, "EUR", "open", "2026-11-01"),
            ("sales", "SO-C", "C13", "S1", 7.0, "EUR", "open", "2026-11-01"),
        ],
    )
    assert got == [
        ("10", "order_number_mismatch"),
        ("11", "missing_in_sales"),
        ("12", "order_number_mismatch"),
        ("A12", "missing_in_erp"),
        ("C13", "missing_in_erp"),
        ("Y11", "missing_in_erp"),
    ]
    out = find_discrepancies(con, "erp", "erp", 0.01)
    pair = out[(out.kind == "order_number_mismatch") & (out.order_id == "12")].iloc[0]
    assert (pair.source_value, pair.other_value, pair.other_system) == ("12", "B12", "sales")


def lines(con, rows):
    append_rows(
        con,
        "staging.order_lines",
        pd.DataFrame(rows, columns=["source_system", "source_id", "order_number", "line_amount"]),
    )


def test_order_lines_must_add_up_to_the_order(con):
    lines(
        con,
        [
            ("erp", "1-10", "1", 60.0),  # 60 + 40 = 100: agrees
            ("erp", "1-20", "1", 40.0),
            ("erp", "2-10", "2", 70.0),  # 70 + 20 = 90, the order says 100
            ("erp", "2-20", "2", 20.0),
            ("erp", "3-10", "3", None),  # a line without an amount cannot add up
            ("erp", "9-10", "9", 5.0),  # no order 9 in the ERP
        ],
    )
    got = findings(
        con,
        [
            ("erp", "1", "1", "K1", 100.0, "EUR", "open"),
            ("erp", "2", "2", "K1", 100.0, "EUR", "open"),
            ("erp", "3", "3", "K3", 50.0, "EUR", "open"),
        ],
    )
    assert got == [
        ("2", "line_total_mismatch"),
        ("3", "line_total_mismatch"),
        ("9", "lines_without_order"),
    ]
    detail = find_discrepancies(con, "erp", "erp", 0.01).set_index("order_id")
    assert detail.loc["2", "source_value"] == "100.00 EUR"
    assert detail.loc["2", "other_value"] == "90.00 (2 lines)"
    assert "add up to 90.00, the order says 100.00" in detail.loc["2", "suggested_fix"]
    assert detail.loc["3", "other_value"] == "no amount (1 lines, 1 without amount)"
    assert detail.loc["3", "suggested_fix"].startswith("1 line(s) of order 3 in erp have no amount")
    assert detail["suggested_fix"].notna().all()

"""A deployment without a system of record (no orders to reconcile against) and without an ERP
source (no ERP customer numbers): the configuration loads, reconciliation runs and makes no
cross-system finding, consolidation runs and the golden records carry no ERP number."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from custpipe.config import ConfigError, load_config
from custpipe.matching.consolidate import Matcher, consolidate
from custpipe.matching.model import MatchModel
from custpipe.reconcile.orders import find_discrepancies, reconcile_orders
from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe.warehouse import append_rows


@pytest.fixture
def config_dir(tmp_path):
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def without_keys(config_dir, *keys: str) -> None:
    path = config_dir / "pipeline.yaml"
    text = path.read_text(encoding="utf-8")
    for key in keys:
        text, n = re.subn(rf"(?m)^  {key}:.*\n", "", text)
        assert n == 1, key
    path.write_text(text, encoding="utf-8")


def test_a_deployment_without_an_erp_source_loads_with_neither(config_dir):
    (config_dir / "sources" / "erp.yaml").unlink()
    without_keys(config_dir, "system_of_record", "erp_source")
    cfg = load_config(config_dir)
    assert cfg.reconcile.system_of_record is None and cfg.publish.erp_source is None


def test_left_out_they_still_mean_the_erp_source_where_there_is_one(config_dir):
    without_keys(config_dir, "system_of_record", "erp_source")
    cfg = load_config(config_dir)
    assert cfg.reconcile.system_of_record == "erp" and cfg.publish.erp_source == "erp"


def test_null_means_none_even_beside_an_erp_source(config_dir):
    path = config_dir / "pipeline.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("system_of_record: erp", "system_of_record: null")
    path.write_text(text.replace("erp_source: erp", "erp_source: null"), encoding="utf-8")
    cfg = load_config(config_dir)
    assert cfg.reconcile.system_of_record is None and cfg.publish.erp_source is None


def test_a_named_source_must_still_be_configured(config_dir):
    (config_dir / "sources" / "erp.yaml").unlink()  # pipeline.yaml still names 'erp'
    with pytest.raises(ConfigError) as err:
        load_config(config_dir)
    msg = str(err.value)
    assert "pipeline.yaml" in msg and "reconcile.system_of_record: 'erp' is not a configured" in msg
    assert "write null for none" in msg


@pytest.fixture
def con(empty_warehouse):
    c = empty_warehouse
    append_rows(
        c,
        "mdm.customer_xref",
        pd.DataFrame(
            {"source_system": ["erp", "sales"], "source_id": ["K1", "S1"], "golden_id": "G1"}
        ),
    )
    append_rows(
        c, "mdm.golden_customers", pd.DataFrame({"golden_id": ["G1"], "erp_customer_number": None})
    )
    append_rows(
        c, "staging.customers", pd.DataFrame({"source_system": ["erp"], "source_id": ["KQ"]})
    )
    rows = [  # (system, id, number, customer, amount, status)
        ("erp", "1", "1", "K1", 10.0, "open"),  # status differs in sales
        ("sales", "SO-1", "1", "S1", 10.0, "completed"),
        ("sales", "SO-3", "3", "S1", 5.0, "open"),  # not in the ERP
        ("erp", "6", "6", "K9", 1.0, "open"),  # unknown customer
        ("erp", "9", "9", "KQ", 1.0, "open"),  # customer quarantined
        ("erp", "8a", "8", "K1", 1.0, "open"),  # duplicate order number
        ("erp", "8b", "8", "K1", 1.0, "open"),
    ]
    orders = pd.DataFrame(
        rows,
        columns=["source_system", "source_id", "order_number", "customer_ref", "amount", "status"],
    ).assign(currency="EUR", order_date=pd.Timestamp("2026-11-01"))
    append_rows(c, "staging.orders", orders)
    return c


def kinds(out: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(zip(out["order_id"], out["kind"], strict=True))


def test_without_a_system_of_record_only_each_systems_own_findings_are_made(con):
    cross = kinds(find_discrepancies(con, "erp", "erp", 0.01))
    assert ("1", "status_mismatch") in cross and ("3", "missing_in_erp") in cross
    own = [("6", "unknown_customer"), ("8", "duplicate_order"), ("9", "customer_quarantined")]
    assert kinds(find_discrepancies(con, None, None, 0.01)) == own
    assert reconcile_orders(con, "r1", None, None, 0.01) == {
        "customer_quarantined": 1,
        "duplicate_order": 1,
        "unknown_customer": 1,
    }
    stored = con.execute("SELECT DISTINCT run_id FROM recon.order_discrepancies").fetchall()
    assert stored == [("r1",)]


def test_with_only_per_system_orders_reconciliation_finds_nothing(empty_warehouse):
    """A deployment with no order data (or clean orders of one system) reconciles to nothing."""
    assert reconcile_orders(empty_warehouse, "r1", None, None, 0.01) == {}


MODEL = MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")


def _staged(con) -> None:
    base = {"party_type": "company", "country": "DE", "is_deleted": False, "name_key": "acme"}
    rows = [
        base | {"source_system": "erp", "source_id": "K1", "name": "Acme GmbH", "tax_id": "T"},
        base | {"source_system": "crm", "source_id": "C1", "name": "Acme", "tax_id": "T"},
    ]
    frame = pd.DataFrame(rows).assign(tax_id_valid=True, postal_code_valid=True)
    append_rows(con, "staging.customers", frame)
    append_rows(
        con,
        "quality.validation_runs",
        pd.DataFrame(
            {"run_id": "v1", "source_system": ["erp", "crm"], "validated_at": pd.Timestamp(0)}
        ),
    )


@pytest.mark.parametrize(("erp_source", "number"), [("erp", "K1"), (None, None)])
def test_consolidation_without_an_erp_source_gives_no_erp_customer_number(
    empty_warehouse, erp_source, number
):
    _staged(empty_warehouse)
    result = consolidate(
        empty_warehouse, "r1", {"erp": 1, "crm": 2}, erp_source, Matcher(MODEL, 0.99, 0.8)
    )
    assert result.golden == 1
    golden = empty_warehouse.execute(
        "SELECT name, erp_customer_number FROM mdm.golden_customers"
    ).fetchall()
    assert golden == [("Acme GmbH", number)]

from __future__ import annotations

import pandas as pd
import pytest
from stdnum.cn import ric, uscc
from stdnum.iso7064 import mod_11_10

from custpipe.standardize import normalize_tax_id
from custpipe_tests.standardize._helpers import one

# Valid numbers built with python-stdnum's check-digit helpers.
USCC = "91440300708461136" + uscc.calc_check_digit("91440300708461136")
RIC = "11010519491231002" + ric.calc_check_digit("11010519491231002" + "0")  # placeholder
DE_VAT = "12345678" + str(mod_11_10.calc_check_digit("12345678"))
BAD_USCC = USCC[:-1] + ("0" if USCC[-1] != "0" else "1")
BAD_DE_VAT = DE_VAT[:-1] + str((int(DE_VAT[-1]) + 1) % 10)


@pytest.mark.parametrize(
    ("raw", "country", "expected", "valid"),
    [
        # zh_CN
        (USCC, "CN", USCC, True),
        (USCC.lower(), "CN", USCC, True),
        (f"{USCC[:6]} {USCC[6:]}", "中国", USCC, True),
        ("91110000600037341L", "CN", "91110000600037341L", True),
        (BAD_USCC, "CN", BAD_USCC, False),
        (RIC, "CN", RIC, True),
        ("12345", "CN", "12345", False),
        # de_DE
        ("DE 136 695 976", "DE", "DE136695976", True),
        ("136695976", "Deutschland", "DE136695976", True),
        (f"DE{DE_VAT}", "DE", f"DE{DE_VAT}", True),
        (f"DE{BAD_DE_VAT}", "DE", f"DE{BAD_DE_VAT}", False),
        ("181/815/08155", "DE", "18181508155", False),  # Steuernummer: no check digit
        ("abc", "DE", "ABC", False),
        # en_US
        ("91-1144442", "US", "911144442", True),
        ("911144442", "USA", "911144442", True),
        ("00-1234567", "US", "001234567", False),  # unassigned prefix
        # other EU countries, with or without prefix
        ("FR 40 303 265 045", "FR", "FR40303265045", True),
        ("40303265045", "FR", "FR40303265045", True),
        ("U13585627", "AT", "ATU13585627", True),
        ("NL004495445B01", "NL", "NL004495445B01", True),
        ("094259216", "GR", "EL094259216", True),
        ("IT00743110158", "IT", "IT00743110158", False),
        # unknown country
        ("ATU13585627", None, "ATU13585627", True),
        ("12-34 56", None, "123456", None),
        # missing
        (None, "DE", None, None),
        ("  ", "DE", None, None),
    ],
)
def test_normalize_tax_id(raw, country, expected, valid):
    tax, ok = normalize_tax_id(one(raw), one(country))
    assert (tax.iloc[0], ok.iloc[0]) == (expected, valid)


def test_another_member_states_vat_number_is_not_valid_for_this_country():
    tax, valid = normalize_tax_id(
        pd.Series(["DE136695976", "DE136695976"]), pd.Series(["FR", "DE"])
    )
    assert valid.tolist() == [False, True]


# One answer for the staged flag `tax_id_valid` and the GX rule `tax_id_check_digit`.
VERDICTS = [
    ("2181508150", "DE", False),  # Steuernummer: no check digit, not verifiable
    ("181/815/08155", "DE", False),
    ("DE136695976", "DE", True),
    (f"DE{BAD_DE_VAT}", "DE", False),
    ("GB980780684", "GB", True),  # UK VAT has a check digit (python-stdnum)
    ("GB980780685", "GB", False),
    (USCC, "CN", True),
    (BAD_USCC, "CN", False),
    ("91-1144442", "US", True),
    ("00-1234567", "US", False),
    ("FR40303265045", "FR", True),
    ("DE136695976", "FR", False),
    ("094259216", "GR", True),
    ("12345", "BR", False),
    ("anything", "ZZ", None),  # no validator known for the country
]


@pytest.mark.parametrize(("raw", "country", "valid"), VERDICTS)
def test_the_staged_flag_and_the_gx_check_give_the_same_verdict(raw, country, valid):
    from custpipe.quality.expectations import tax_id_check

    staged, flag = normalize_tax_id(one(raw), one(country))
    assert flag.iloc[0] == valid
    assert tax_id_check(raw, country) == valid  # the raw value ...
    assert tax_id_check(staged.iloc[0], country) == valid  # ... and the staged one


def test_a_validator_bug_is_not_hidden_as_an_invalid_tax_id(monkeypatch):
    from custpipe.standardize import tax_ids

    def broken(_text):
        raise RuntimeError("validator bug")

    monkeypatch.setattr(tax_ids.uscc, "validate", broken)
    with pytest.raises(RuntimeError, match="validator bug"):
        tax_ids.tax_id_value(USCC, "CN")

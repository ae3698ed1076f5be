from __future__ import annotations

import pandas as pd
import pytest

from custpipe.standardize import clean_name, company_name_key, legal_form, person_name_key
from custpipe_tests.standardize._helpers import one

SAME_COMPANY = [
    ("北京华为科技有限公司", "北京華為科技有限責任公司", "北京华为科技"),
    ("北京华为科技有限公司", "北京华为科技股份有限公司", "北京华为科技"),
    ("上海电气集团有限公司", "上海電氣集團有限公司", "上海电气集团"),
    ("阿里巴巴（中国）有限公司", "阿里巴巴(中国)有限公司", "阿里巴巴中国"),
    ("深圳腾讯计算机系统有限公司", "深圳騰訊計算機系統有限公司", "深圳腾讯计算机系统"),
    ("Müller GmbH", "Mueller G.m.b.H.", "mueller"),
    ("Müller GmbH", "MÜLLER Gesellschaft mit beschränkter Haftung", "mueller"),
    ("Schmidt GmbH & Co. KG", "Schmidt GmbH u. Co. KG", "schmidt"),
    ("Deutsche Bank AG", "Deutsche Bank Aktiengesellschaft", "deutschebank"),
    ("Bäckerei Jäger UG (haftungsbeschränkt)", "Baeckerei Jaeger UG", "baeckereijaeger"),
    ("Meier e.K.", "Meier e. K.", "meier"),
    ("ACME Inc.", "Acme Incorporated", "acme"),
    ("Acme, Inc", "ACME INC.", "acme"),
    ("Globex LLC", "Globex L.L.C.", "globex"),
    ("Initech Ltd.", "Initech Limited", "initech"),
    ("Umbrella Corp.", "Umbrella Corporation", "umbrella"),
    ("Huawei Technologies Co., Ltd.", "Huawei Technologies Company Limited", "huaweitechnologies"),
    ("Stark Industries PLC", "Stark Industries p.l.c.", "starkindustries"),
]


@pytest.mark.parametrize(("a", "b", "key"), SAME_COMPANY)
def test_company_name_key_variants_agree(a, b, key):
    keys = company_name_key(pd.Series([a, b]))
    assert keys.tolist() == [key, key]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Springer-Verlag", "springerverlag"),  # 'ag' inside a word is not a legal form
        ("Becker", "becker"),
        ("AG", "ag"),  # a name that is only a legal form keeps it
        ("有限公司", "有限公司"),
        ("Volkswagen AG Wolfsburg", "volkswagenagwolfsburg"),  # legal forms only at the end
        ("  ", None),
        (None, None),
    ],
)
def test_company_name_key_edge_cases(raw, expected):
    assert company_name_key(one(raw)).iloc[0] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Müller GmbH", "GmbH"),
        ("Mueller G.m.b.H.", "GmbH"),
        ("Schmidt GmbH & Co. KG", "GmbH & Co. KG"),
        ("Deutsche Bank Aktiengesellschaft", "AG"),
        ("Foo OHG", "OHG"),
        ("Bar UG (haftungsbeschränkt)", "UG"),
        ("Meier e.K.", "e.K."),
        ("Acme Incorporated", "Inc"),
        ("Globex L.L.C.", "LLC"),
        ("Initech Limited", "Ltd"),
        ("Huawei Technologies Co., Ltd.", "Co., Ltd."),
        ("Umbrella Corporation", "Corp"),
        ("北京华为科技有限公司", "有限公司"),
        ("北京華為科技有限責任公司", "有限责任公司"),
        ("中国平安保险股份有限公司", "股份有限公司"),
        ("Springer-Verlag", None),
        ("北京大学", None),
        (None, None),
    ],
)
def test_legal_form(raw, expected):
    assert legal_form(one(raw)).iloc[0] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mueller G.m.b.H.", "Mueller GmbH"),
        ("  Müller   gmbh ", "Müller GmbH"),
        ("Acme Incorporated", "Acme Inc."),
        ("Acme, inc", "Acme, Inc."),
        ("Initech Limited", "Initech Ltd."),
        ("Deutsche Bank Aktiengesellschaft", "Deutsche Bank AG"),
        ("Bar UG", "Bar UG (haftungsbeschränkt)"),
        ("北京華為科技有限責任公司", "北京華為科技有限责任公司"),
        ("ＡＢＣ有限公司", "ABC有限公司"),
        ("Springer-Verlag", "Springer-Verlag"),
        ("", None),
    ],
)
def test_clean_name(raw, expected):
    assert clean_name(one(raw)).iloc[0] == expected


@pytest.mark.parametrize(
    ("given", "family", "expected"),
    [
        ("Jürgen", "Müller", "mueller|juergen"),
        ("Juergen", "MUELLER", "mueller|juergen"),
        ("小明", "王", "王|小明"),
        ("曉明", "王", "王|晓明"),
        ("John", None, "|john"),
        (None, "Smith", "smith|"),
        (None, None, None),
    ],
)
def test_person_name_key(given, family, expected):
    assert person_name_key(one(given), one(family)).iloc[0] == expected

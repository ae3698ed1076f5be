"""The entity builder produces clean, valid values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import phonenumbers
import pytest
from stdnum.cn import uscc
from stdnum.de import vat
from stdnum.us import ein

from custpipe.demo import taxids
from custpipe.demo.entities import build_entities
from custpipe.demo.phones import STYLES, _render
from custpipe.demo.systems import gbk_safe


@pytest.fixture(scope="module")
def entities():
    return build_entities(3000, np.random.default_rng(7), dt.date(2026, 11, 27), seed=7)


def _validator(country: str):
    return {"CN": uscc, "DE": vat, "US": ein}[country]


def test_locale_and_kind_mix(entities):
    share = entities["country"].value_counts(normalize=True)
    assert 0.35 < share["CN"] < 0.45
    assert 0.25 < share["US"] < 0.35
    assert 0.25 < share["DE"] < 0.35
    assert 0.65 < entities["is_company"].mean() < 0.75
    assert entities["entity_id"].is_unique


def test_clean_phones_are_valid(entities):
    for phone in entities["phone"]:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone)), "invalid clean phone"


def test_tax_ids_valid_for_companies(entities):
    companies = entities[entities["is_company"]]
    for country, tax in zip(companies["country"], companies["tax_id"], strict=True):
        assert _validator(country).is_valid(tax)
    assert (entities.loc[~entities["is_company"], "tax_id"] == "").all()


def test_invalidated_tax_ids_fail(entities):
    companies = entities[entities["is_company"]].head(300)
    for i, (country, tax) in enumerate(zip(companies["country"], companies["tax_id"], strict=True)):
        broken = taxids.invalidate(tax, (i % 10) / 10)
        assert broken != tax
        assert not _validator(country).is_valid(broken)


def test_legal_forms_in_company_names(entities):
    names = entities.loc[entities["is_company"]].groupby("country")["name"]
    assert names.apply(lambda s: s.str.endswith("公司").all())["CN"]
    assert names.apply(lambda s: s.str.contains(r" (?:GmbH|AG)$").all())["DE"]
    assert names.apply(lambda s: s.str.contains(r" (?:Inc\.|LLC|Ltd\.)$").all())["US"]


def test_gbk_transliteration():
    assert gbk_safe("Müller Straße") == "Mueller Strasse"
    assert gbk_safe("Ångström Sø") == "Angstroem So"
    assert gbk_safe("Café") == "Café"  # é exists in GBK
    assert gbk_safe("上海華泰") == "上海華泰"


def test_phone_variants_parse_back_to_clean_number(entities):
    sample = entities.groupby("country").head(150).reset_index(drop=True)
    parts = sample[["phone_cc", "phone_area", "phone_sub", "phone_mobile"]].set_axis(
        ["cc", "area", "sub", "mobile"], axis=1
    )
    for country, styles in STYLES.items():
        mask = (sample["country"] == country).to_numpy()
        for style in styles:
            rendered = _render(style, parts[mask], sample.loc[mask, "country"])
            region = "DE" if style == "intl00" else country  # 00 is not the US exit code
            for text, clean in zip(rendered, sample.loc[mask, "phone"], strict=True):
                number = phonenumbers.parse(text, region)
                assert (
                    phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == clean
                ), style

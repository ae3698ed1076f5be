from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custpipe import standardize as st

GARBAGE = pd.Series(
    [
        "",
        " ",
        "\x00",
        "@@@",
        "+",
        "00",
        "()",
        "😀",
        "a" * 500,
        0,
        -1,
        3.5,
        float("inf"),
        True,
        np.nan,
        None,
        pd.NA,
        "ÄÖÜ",
        "中" * 50,
    ],
    dtype=object,
)
COUNTRY = pd.Series(["DE", "CN", "US", None, "??", "GR", "GB"] * 3, dtype=object)[: len(GARBAGE)]

SINGLE = [st.clean_text, st.fold_key, st.company_name_key, st.legal_form, st.clean_name, st.to_iso2]
PAIRED = [st.to_e164, st.normalize_tax_id, st.normalize_postcode]


@pytest.mark.parametrize("func", SINGLE, ids=lambda f: f.__name__)
def test_single_column_never_raises(func):
    out = func(GARBAGE)
    assert out.index.equals(GARBAGE.index)
    assert out.iloc[14:17].tolist() == [None, None, None]


@pytest.mark.parametrize("func", PAIRED, ids=lambda f: f.__name__)
def test_paired_never_raises(func):
    value, valid = func(GARBAGE, COUNTRY)
    assert value.index.equals(GARBAGE.index) and valid.index.equals(GARBAGE.index)
    assert valid.iloc[14:17].tolist() == [None, None, None]  # absent is not invalid
    assert set(valid.dropna().tolist()) <= {True, False}


def test_email_never_raises():
    value, valid = st.normalize_email(GARBAGE)
    assert valid.iloc[14:17].tolist() == [None, None, None]
    assert set(valid.dropna().tolist()) <= {True, False}


def test_person_name_key_never_raises():
    family = GARBAGE[::-1].reset_index(drop=True)
    assert len(st.person_name_key(GARBAGE, family)) == len(GARBAGE)


def test_empty_series():
    empty = pd.Series([], dtype=object)
    assert st.fold_key(empty).empty
    value, valid = st.to_e164(empty, empty)
    assert value.empty and valid.empty


def test_string_and_categorical_dtypes():
    s = pd.Series(["Müller GmbH", None, "Müller GmbH"], dtype="string")
    assert st.company_name_key(s).tolist() == ["mueller", None, "mueller"]
    c = pd.Series(["Germany", "中国", None], dtype="category")
    assert st.to_iso2(c).tolist() == ["DE", "CN", None]

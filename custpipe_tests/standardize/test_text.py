from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from custpipe.standardize import clean_text, fold_key
from custpipe_tests.standardize._helpers import one


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３", "ABC123"),  # full-width -> half-width
        ("  Müller   GmbH\t", "Müller GmbH"),
        ("北京　华为", "北京 华为"),  # ideographic space
        ("line\nbreak", "line break"),
        ("zero\u200bwidth", "zerowidth"),
        ("bell\x07char", "bellchar"),
        ("\ufeffBOM", "BOM"),
        ("（北京）", "(北京)"),
        ("Café", "Café"),
        ("", None),
        ("   ", None),
        (None, None),
        (np.nan, None),
        (1067.0, "1067"),
        (42, "42"),
    ],
)
def test_clean_text(raw, expected):
    assert clean_text(one(raw)).iloc[0] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Müller", "mueller"),
        ("Mueller", "mueller"),
        ("MÜLLER", "mueller"),
        ("Straße", "strasse"),
        ("Strasse", "strasse"),
        ("Björn Schäfer", "bjoernschaefer"),
        ("ＡＢＣ１２３", "abc123"),
        ("北京華為科技", "北京华为科技"),
        ("北京华为科技", "北京华为科技"),
        ("Café Zoë", "cafezoe"),
        ("O'Brien-Smith, Jr.", "obriensmithjr"),
        ("阿里巴巴（中国）", "阿里巴巴中国"),
        ("---", None),
        (None, None),
    ],
)
def test_fold_key(raw, expected):
    assert fold_key(one(raw)).iloc[0] == expected


def test_alignment_and_missing_keep_index():
    s = pd.Series(["a", None, "a", np.nan, " B "], index=[10, 20, 30, 40, 50], name="x")
    out = clean_text(s)
    assert out.index.tolist() == [10, 20, 30, 40, 50]
    assert out.tolist() == ["a", None, "a", None, "B"]
    assert out.dtype == object
    assert out.name == "x"

"""Standardisers under hostile text: control sequences, invisible characters, homoglyphs,
lettered phones, Unicode e-mails."""

from __future__ import annotations

import pandas as pd
import pytest

from custpipe.standardize import clean_text, company_name_key, fold_key, normalize_email, to_e164
from custpipe.standardize.text import clean_value
from custpipe_tests.standardize._helpers import one


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[31mRed\x1b[0m Corp", "Red Corp"),  # ANSI colour (CSI) sequences, whole
        ("\x1b[1;4;38;5;196mBold\x1b[m", "Bold"),
        ("\x9b31mC1 CSI", "C1 CSI"),  # the one-byte C1 form of CSI
        ("\x1b]0;pwned\x07Title", "Title"),  # OSC (window title) up to BEL
        ("\x1b]8;;http://x\x1b\\Link\x1b]8;;\x1b\\", "Link"),  # OSC hyperlink up to ST
        ("\x1bcReset", "Reset"),  # two-character escape
        ("A\x00B\x00", "AB"),  # NUL
        ("a\u2066b\u2069c\u061cd", "abcd"),  # bidi isolates, Arabic letter mark
        ("\u202eevil\u202c", "evil"),  # right-to-left override
        ("tag\U000e0041\U000e007f", "tag"),  # Unicode tag characters
        ("x\u2028y\u2029z", "x y z"),  # line / paragraph separators are whitespace
    ],
)
def test_control_and_invisible_characters_are_removed(raw, expected):
    assert clean_value(raw) == expected


@pytest.mark.parametrize(
    "kept",
    [
        "北京华为技术有限公司",
        "Nguyễn Văn Anh",
        "Ærøskøbing Ølstue",
        "Zoë Saldaña",
        "شركة الاتحاد",
        "Иван Петров",
        "Δέλτα ΑΕ",
        "क्षेत्र",  # Devanagari with combining signs
    ],
)
def test_legitimate_unicode_is_kept(kept):
    assert clean_value(kept) == kept


def test_combining_marks_compose_under_nfkc():
    assert clean_value("Cafe\u0301") == "Café"


def test_a_latin_name_with_cyrillic_lookalikes_folds_to_the_latin_key():
    # 'Аcme' with a Cyrillic А (U+0410), 'Ѕіеmens' with Cyrillic Ѕ, і, е
    keys = company_name_key(pd.Series(["Аcme GmbH", "Acme GmbH", "Ѕіеmens AG", "Siemens AG"]))
    assert keys.iloc[0] == keys.iloc[1] == "acme"
    assert keys.iloc[2] == keys.iloc[3] == "siemens"


def test_an_all_cyrillic_name_is_not_folded_to_latin():
    assert fold_key(one("Иван Петров")).iloc[0] == "иванпетров"


@pytest.mark.parametrize(
    "raw", ["+49 30 CALL-NOW", "+49 30 1234 ABC", "1-800-FLOWERS", "030 12345 six"]
)
def test_phones_with_letters_are_invalid_not_guessed(raw):
    phone, valid = to_e164(one(raw), one("DE"))
    assert (phone.iloc[0], valid.iloc[0]) == (None, False)


@pytest.mark.parametrize(
    "raw", ["+49 30 1234567 ext. 12", "+49 30 1234567 x12", "Tel: 030 1234567"]
)
def test_extensions_and_labels_are_still_read(raw):
    phone, valid = to_e164(one(raw), one("DE"))
    assert phone.iloc[0] == "+49301234567" and valid.iloc[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("josé@exämple.de", "josé@exämple.de"),  # internationalised domain and local part
        ("用户@例子.中国", "用户@例子.中国"),
        ("Info@Bücher.DE", "info@bücher.de"),
    ],
)
def test_unicode_e_mails_are_valid_smtputf8_addresses(raw, expected):
    email, valid = normalize_email(one(raw))
    assert (email.iloc[0], valid.iloc[0]) == (expected, True)


def test_an_e_mail_with_control_characters_is_not_valid():
    email, valid = normalize_email(one("a\x00b@example.com"))
    assert valid.iloc[0] is False or valid.iloc[0] == False  # noqa: E712
    assert "\x00" not in email.iloc[0]


def test_a_ten_megabyte_field_is_cleaned_intact_and_fast():
    big = "x" * 10_000_000
    out = clean_text(pd.Series([big, "a"]))
    assert len(out.iloc[0]) == 10_000_000 and out.iloc[1] == "a"

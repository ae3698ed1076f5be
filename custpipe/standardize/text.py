"""Free-text cleaning and matching keys."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

import pandas as pd
import zhconv

from custpipe.standardize._util import as_text, is_missing, map_unique

# Terminal escape sequences, removed whole (not just their ESC, which left '[31m' behind),
# and only when whole: a CSI (ESC [ parameters, final byte), a string sequence (OSC, DCS,
# SOS, PM, APC) in its 7-bit form ESC ] / P / X / ^ / _ up to BEL or ST, and two-character
# escapes (ESC c, ESC ( B ...). The one-byte C1 CSI 0x9b counts only with a numeric
# parameter and a final letter ('\x9b31m'); other C1 introducers, an unterminated sequence
# and cp1252 text read as latin-1 ('Müller \x9b GmbH') lose only their control character
# (see _CONTROL_RE), never the text after it.
_ESCAPE_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x9b[0-9][0-9;]*[A-Za-z]"
    r"|\x1b[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b(?![\[\]PX^_])[ -/]*[0-~]"
)
# Control / format characters that never belong in master data (whitespace is handled apart):
# C0/C1 controls, soft hyphen, zero-width and bidi controls (incl. isolates and the Arabic
# letter mark), word joiners, BOM, Unicode tag characters. Tab and newline become spaces.
_CONTROL_RE = re.compile(
    r"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]"
)
# Cyrillic and Greek letters that look like Latin ones: folded in keys of mixed-script words
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһӏԛԝвкмнтАВЕКМНОРСТХІЈЅУ"  # Cyrillic
    "αεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",  # Greek
    "aeopcyxijsdhlqwbkmhtABEKMHOPCTXIJSYaeikvoptuxABEZHIKMNOPTYX",
)
_LATIN_RE = re.compile(r"[a-zA-Z]")
_SPACE_RE = re.compile(r"\s+")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
# CJK ideographs (basic + ext. A + compatibility); only such strings go through zhconv.
_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def clean_value(value: Any) -> str | None:
    """Clean one scalar (see :func:`clean_text`)."""
    if is_missing(value):
        return None
    text = unicodedata.normalize("NFKC", as_text(value))
    if "\x1b" in text or "\x9b" in text:
        text = _ESCAPE_RE.sub("", text)
    text = _CONTROL_RE.sub("", text)
    text = _SPACE_RE.sub(" ", text).strip()
    return text or None


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese; cheap no-op for text without ideographs."""
    if _CJK_RE.search(text):
        return zhconv.convert(text, "zh-cn")
    return text


def _strip_marks(text: str) -> str:
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", stripped)


def fold_confusables(text: str) -> str:
    """Latin look-alike Cyrillic/Greek letters -> Latin, in words that also hold Latin letters.

    'Аcme' with a Cyrillic 'А' becomes 'Acme'; a word written wholly in Cyrillic or Greek
    ('Иван', 'Δέλτα') is left as it is. A small table of the common look-alikes (no
    confusables library is installed), applied to matching keys only, never to names.
    """
    if text.isascii() or not _LATIN_RE.search(text):
        return text
    return " ".join(
        w.translate(_CONFUSABLES) if _LATIN_RE.search(w) else w for w in text.split(" ")
    )


@lru_cache(maxsize=4096)
def fold_cleaned(text: str) -> str:
    """Fold an already-cleaned string to a key (no cleaning, may return '')."""
    text = to_simplified(fold_confusables(text).casefold()).translate(_UMLAUTS)
    text = _strip_marks(text)
    return "".join(ch for ch in text if ch.isalnum())


def fold_value(value: Any) -> str | None:
    """Fold one scalar (see :func:`fold_key`)."""
    text = clean_value(value)
    if text is None:
        return None
    return fold_cleaned(text) or None


def clean_text(s: pd.Series) -> pd.Series:
    """NFKC, drop control characters, collapse whitespace, strip; empty/missing -> None."""
    return map_unique(s, clean_value)


def fold_key(s: pd.Series) -> pd.Series:
    """Matching key: clean_text + casefold + simplified Chinese + umlaut/accent folding.

    Only letters and digits (incl. CJK) are kept, so 'Müller-Lüdenscheidt' and
    'mueller ludenscheidt' differ only where the spelling really does.
    """
    return map_unique(s, fold_value)

"""Terminal escape sequences: only a whole, terminated sequence is removed; a C1 control
without a proper sequence after it (often cp1252 text read as latin-1) loses only itself."""

from __future__ import annotations

import pytest

from custpipe.standardize.text import clean_value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # unterminated or mis-decoded C1 introducers: only the control character goes
        ("ACME\x9dGmbH Berlin", "ACMEGmbH Berlin"),  # C1 OSC without a terminator
        ("Müller \x9b GmbH", "Müller GmbH"),  # cp1252 '›' read as latin-1
        ("Müller\x9bGmbH", "MüllerGmbH"),  # 8-bit CSI needs a numeric parameter
        ("ACME\x90GmbH\x9c Berlin", "ACMEGmbH Berlin"),  # C1 DCS ... ST: not a string form
        ("\x9d0;title\x07ACME", "0;titleACME"),  # C1 OSC is not read as a string sequence
        ("ACME\x98Start\x9f Ltd", "ACMEStart Ltd"),  # C1 SOS / APC
        # unterminated 7-bit string sequences: only the ESC goes
        ("ACME\x1b]unterminated GmbH", "ACME]unterminated GmbH"),
        ("ACME\x1bPapier GmbH", "ACMEPapier GmbH"),  # ESC P (DCS) with no ST after it
        # whole, terminated sequences are removed
        ("\x1b[31mRed\x1b[0m Corp", "Red Corp"),
        ("\x1b[1;4;38;5;196mBold\x1b[m", "Bold"),
        ("\x9b31mC1 CSI", "C1 CSI"),
        ("\x9b1;31mC1 CSI", "C1 CSI"),
        ("\x1b]0;pwned\x07Title", "Title"),
        ("\x1b]8;;http://x\x1b\\Link\x1b]8;;\x1b\\", "Link"),
        ("A\x1bPq#0;2;0;0;0\x1b\\B", "AB"),  # DCS (sixel) up to ST
        ("A\x1b_apc payload\x1b\\B", "AB"),  # APC up to ST
        ("\x1bcReset", "Reset"),
        ("\x1b(BPlain", "Plain"),  # charset designation (ESC intermediate final)
    ],
)
def test_escape_sequences_are_removed_only_when_whole(raw, expected):
    assert clean_value(raw) == expected

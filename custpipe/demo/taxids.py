"""Vectorised generation of check-digit-valid tax ids (CN USCC, DE VAT, US EIN)."""

from __future__ import annotations

import numpy as np

from custpipe.demo.reference import CN_DIVISION

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
EIN_PREFIXES = (
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "10",
    "11",
    "12",
    "13",
    "14",
    "15",
    "16",
    "20",
    "21",
    "22",
    "23",
    "24",
    "25",
    "26",
    "27",
    "30",
    "31",
    "32",
    "33",
    "34",
    "35",
    "36",
    "37",
    "38",
    "39",
    "40",
    "41",
    "42",
    "43",
    "44",
    "45",
    "46",
    "47",
    "48",
    "50",
    "51",
    "52",
    "53",
    "54",
    "55",
    "56",
    "57",
    "58",
    "59",
    "60",
    "61",
    "62",
    "63",
    "64",
    "65",
    "66",
    "67",
    "68",
    "71",
    "72",
    "73",
    "74",
    "75",
    "76",
    "77",
    "80",
    "81",
    "82",
    "83",
    "84",
    "85",
    "86",
    "87",
    "88",
    "90",
    "91",
    "92",
    "93",
    "94",
    "95",
    "98",
    "99",
)
EIN_BAD_PREFIXES = ("00", "07", "08", "09", "17", "18", "19", "28", "29", "49", "69", "70")


def _join(codes: np.ndarray, alphabet: str) -> np.ndarray:
    lut = np.array(list(alphabet), dtype=object)
    chars = lut[codes]
    return np.array(["".join(row) for row in chars], dtype=object)


def uscc(city_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Valid 18-char unified social credit codes for the given CN city indexes."""
    n = len(city_idx)
    div = np.array([[int(c) for c in d] for d in CN_DIVISION])[city_idx]
    head = np.column_stack([np.full(n, 9), np.full(n, 1), div])
    org_digits = rng.integers(0, 10, (n, 9))
    org_letters = rng.integers(10, 31, (n, 9))
    org = np.where(rng.random((n, 9)) < 0.1, org_letters, org_digits)
    body = np.column_stack([head, org]) if n else np.zeros((0, 17), dtype=int)
    total = (body * _USCC_WEIGHTS).sum(axis=1)
    check = (31 - total) % 31
    return _join(np.column_stack([body, check]).astype(int), USCC_ALPHABET)


def de_vat(n: int, rng: np.random.Generator) -> np.ndarray:
    """Valid German VAT ids 'DE' + 9 digits (ISO 7064 Mod 11,10)."""
    digits = rng.integers(0, 10, (n, 8))
    digits[:, 0] = rng.integers(1, 10, n)
    check = np.full(n, 5)
    for i in range(8):
        check = ((np.where(check == 0, 10, check) * 2) % 11 + digits[:, i]) % 10
    last = (1 - (np.where(check == 0, 10, check) * 2) % 11) % 10
    body = _join(np.column_stack([digits, last]), "0123456789")
    return np.array(["DE" + b for b in body], dtype=object)


def us_ein(n: int, rng: np.random.Generator) -> np.ndarray:
    """Valid US EINs 'NN-NNNNNNN' with a known IRS campus prefix."""
    prefix = np.array(EIN_PREFIXES, dtype=object)[rng.integers(0, len(EIN_PREFIXES), n)]
    rest = np.char.zfill(rng.integers(0, 10_000_000, n).astype(str), 7)
    return np.array([p + "-" + r for p, r in zip(prefix, rest, strict=True)], dtype=object)


def invalidate(tax_id: str, r: float) -> str:
    """Return the tax id with a broken check digit (or invalid EIN prefix)."""
    if len(tax_id) == 18:  # USCC
        pos = USCC_ALPHABET.index(tax_id[-1])
        return tax_id[:-1] + USCC_ALPHABET[(pos + 1 + int(r * 29)) % 31]
    if tax_id.startswith("DE"):
        return tax_id[:-1] + str((int(tax_id[-1]) + 1 + int(r * 9)) % 10)
    return EIN_BAD_PREFIXES[int(r * len(EIN_BAD_PREFIXES))] + tax_id[2:]

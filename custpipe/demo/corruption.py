"""Error injection on source records: typos, variants, missing and invalid values."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np
import pandas as pd
import zhconv

from custpipe.demo import phones, taxids
from custpipe.demo.rates import ErrorRates
from custpipe.demo.reference import LEGAL_FORMS, TIER_CODES, TIERS, ZH_BRAND

_FULL_WIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_HANZI = "".join(c for c, _ in ZH_BRAND)
_PHONE_COLS = ["phone_cc", "phone_area", "phone_sub", "phone_mobile"]


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def typo(text: str, r1: float, r2: float) -> str:
    """Swap, drop, replace or double one character (deterministic given r1, r2)."""
    if len(text) < 2:
        return text
    pos = int(r2 * (len(text) - 1))
    op = int(r1 * 4)
    if op == 0:
        return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
    if op == 1:
        return text[:pos] + text[pos + 1 :]
    if op == 2:
        pool = _HANZI if _is_cjk(text[pos]) else _LETTERS
        repl = pool[int(r1 * 1000) % len(pool)]
        if repl == text[pos]:
            repl = pool[(int(r1 * 1000) + 1) % len(pool)]
        return text[:pos] + repl + text[pos + 1 :]
    return text[:pos] + text[pos] + text[pos:]


def full_width(text: str) -> str:
    """Convert ASCII letters, digits and punctuation to their full-width forms."""
    return text.translate(_FULL_WIDTH)


def spacing_case(text: str, r: float) -> str:
    """Stray or double spaces, or a case change."""
    op = int(r * 5)
    if op == 0 and " " in text:
        return text.replace(" ", "  ", 1)
    if op == 1:
        return text + " "
    if op == 2:
        return " " + text
    if op == 3 and text.upper() != text:
        return text.upper()
    if op == 4 and text.lower() != text:
        return text.lower()
    return text + "  "


def invalid_email(email: str, r: float) -> str:
    """Break an e-mail address the way humans do."""
    op = int(r * 4)
    if op == 0:
        return email.replace("@", "", 1)
    if op == 1:
        return email.replace("@", "@@", 1)
    if op == 2:
        return email.rsplit(".", 1)[0]
    return email.replace("@", " @ ", 1)


@lru_cache(maxsize=200_000)
def to_traditional(text: str) -> str:
    """Simplified to traditional Chinese (cached)."""
    return zhconv.convert(text, "zh-hant")


def _apply(df: pd.DataFrame, col: str, mask: np.ndarray, fn, r=None) -> None:
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return
    values = df[col].to_numpy(copy=True)
    if r is None:
        values[idx] = [fn(v) for v in values[idx]]
    else:
        values[idx] = [fn(v, x) for v, x in zip(values[idx], r[idx], strict=True)]
    df[col] = values


class Corruptor:
    """Apply the configured defects to one system's record frame, counting them."""

    def __init__(self, rates: ErrorRates, rng: np.random.Generator, counts: Counter):
        self.rates, self.rng, self.counts = rates, rng, counts

    def _mask(self, n: int, rate: float, eligible=None) -> np.ndarray:
        m = self.rng.random(n) < rate
        return m if eligible is None else m & np.asarray(eligible)

    def _count(self, kind: str, mask: np.ndarray) -> None:
        self.counts[kind] += int(mask.sum())

    def legal_form(self, df: pd.DataFrame, mask: np.ndarray) -> None:
        """Replace the legal form by a variant spelling."""
        mask = mask & (df["legal_form"] != "").to_numpy()
        r = self.rng.random(len(df))
        name, base = df["name"].to_numpy(copy=True), df["name_base"].to_numpy()
        form, cn = df["legal_form"].to_numpy(), (df["country"] == "CN").to_numpy()
        for i in np.flatnonzero(mask):
            variants = LEGAL_FORMS[form[i]][1]
            variant = variants[int(r[i] * len(variants))]
            if cn[i]:
                name[i] = base[i] + variant
            else:
                sep = ", " if variant.startswith("Inc") and r[i] < 0.3 else " "
                name[i] = base[i] + sep + variant
        df["name"] = name
        self._count("legal_form_variant", mask)

    def typo_name(self, df: pd.DataFrame, mask: np.ndarray) -> None:
        """Typo in the company name or the person's family/given name."""
        r1, r2 = self.rng.random(len(df)), self.rng.random(len(df))
        comp, cn = df["is_company"].to_numpy(), (df["country"] == "CN").to_numpy()
        name = df["name"].to_numpy(copy=True)
        given, family = df["given"].to_numpy(copy=True), df["family"].to_numpy(copy=True)
        for i in np.flatnonzero(mask):
            if comp[i]:
                name[i] = typo(name[i], r1[i], r2[i])
                continue
            if r1[i] < 0.5:
                family[i] = typo(family[i], r1[i], r2[i])
            else:
                given[i] = typo(given[i], r1[i], r2[i])
            name[i] = family[i] + given[i] if cn[i] else given[i] + " " + family[i]
        df["name"], df["given"], df["family"] = name, given, family
        self._count("typo_name", mask)

    def typo_street(self, df: pd.DataFrame, mask: np.ndarray) -> None:
        """Typo in the street."""
        r1, r2 = self.rng.random(len(df)), self.rng.random(len(df))
        street = df["street"].to_numpy(copy=True)
        for i in np.flatnonzero(mask):
            street[i] = typo(street[i], r1[i], r2[i])
        df["street"] = street
        self._count("typo_street", mask)

    def stale_address(self, df: pd.DataFrame, mask: np.ndarray) -> None:
        """Use an older street/postcode of the entity."""
        df.loc[mask, "street"] = df.loc[mask, "old_street"]
        df.loc[mask, "postcode"] = df.loc[mask, "old_postcode"]
        self._count("stale_address", mask)

    def spacing(self, df: pd.DataFrame, mask: np.ndarray) -> None:
        """Stray/double spaces and case changes in the name."""
        r = self.rng.random(len(df))
        _apply(df, "name", mask, spacing_case, r)
        self._count("spacing_case", mask)

    def missing_email(self, df: pd.DataFrame, mask: np.ndarray) -> None:
        """Blank out the e-mail."""
        df.loc[mask, "email"] = ""
        self._count("missing_email", mask)

    def run(self, df: pd.DataFrame, system: str) -> None:
        """Apply all record-level defects in place (df has a RangeIndex)."""
        n, rt = len(df), self.rates
        zh = (df["country"] == "CN").to_numpy()
        dup = df["is_dup"].to_numpy()
        self.stale_address(df, self._mask(n, rt.stale_address))
        self.legal_form(df, self._mask(n, rt.legal_form))
        self.typo_name(df, self._mask(n, rt.typo))
        self.typo_street(df, self._mask(n, rt.typo))
        # duplicates always differ in at least one way
        kind = (self.rng.random(n) * 5).astype(int)
        self.typo_name(df, dup & (kind == 0))
        self.legal_form(df, dup & (kind == 1))
        self.stale_address(df, dup & (kind == 2))
        self.missing_email(df, dup & (kind == 3))
        self.spacing(df, dup & (kind == 4))
        variant = self._mask(n, rt.phone_format) | (dup & (kind == 0))
        df["phone"] = phones.format_phones(
            df[_PHONE_COLS].set_axis(["cc", "area", "sub", "mobile"], axis=1),
            df["country"],
            system,
            variant,
            self.rng,
        ).to_numpy()
        self._count("phone_format_variant", variant)
        trad = self._mask(n, rt.traditional_chinese, zh)
        for col in (
            "name",
            "given",
            "family",
            "contact_given",
            "contact_family",
            "street",
            "city",
            "region",
        ):
            _apply(df, col, trad, to_traditional)
        self._count("traditional_chinese", trad)
        r = self.rng.random(n)
        m = self._mask(n, rt.invalid_email, (df["email"] != "").to_numpy())
        _apply(df, "email", m, invalid_email, r)
        self._count("invalid_email", m)
        m = self._mask(n, rt.invalid_tax_id, (df["tax_id"] != "").to_numpy())
        _apply(df, "tax_id", m, taxids.invalidate, r)
        self._count("invalid_tax_id", m)
        fw = self._mask(n, rt.full_width)
        which = (self.rng.random(n) * 4).astype(int)
        for j, col in enumerate(("street", "postcode", "phone", "tax_id")):
            _apply(df, col, fw & (which == j), full_width)
        self._count("full_width", fw)
        self.spacing(df, self._mask(n, rt.spacing_case))
        for col in ("phone", "email", "postcode", "tax_id"):
            m = self._mask(n, rt.missing_field, (df[col] != "").to_numpy())
            df.loc[m, col] = ""
            self._count(f"missing_{col}", m)

    def tier_codes(self, tiers: pd.Series, system: str) -> np.ndarray:
        """Encode A/B/C in the system's code set, with wrong and unknown codes."""
        codes, unknown = TIER_CODES[system]
        idx = tiers.map({t: i for i, t in enumerate(TIERS)}).to_numpy()
        n = len(idx)
        wrong = self._mask(n, self.rates.wrong_code)
        shift = self.rng.integers(1, 3, n)
        idx = np.where(wrong, (idx + shift) % 3, idx)
        out = np.asarray(codes, dtype=object)[idx]
        unk = self._mask(n, self.rates.unknown_code) & ~wrong
        out[unk] = np.asarray(unknown, dtype=object)[self.rng.integers(0, len(unknown), n)][unk]
        self._count("wrong_code", wrong)
        self._count("unknown_code", unk)
        return out

"""Valid phone numbers (vectorised) and their many real-world spellings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from custpipe.demo.reference import CITIES, CN_MOBILE_PREFIXES, DE_MOBILE_PREFIXES, PHONE_CC

# style names per country; the first style of SYSTEM_STYLE is the system's own convention
STYLES = {
    "CN": ("nat_dash", "nat_compact", "intl", "intl00", "intl_dash", "nat_space", "nat_paren"),
    "DE": (
        "intl",
        "nat_slash",
        "nat_space",
        "nat_paren",
        "intl00",
        "intl_trunk",
        "e164",
        "nat_dash",
    ),
    "US": ("nat_paren", "nat_dash", "nat_dots", "intl", "intl_dash", "nat_compact", "e164"),
}
SYSTEM_STYLE = {"erp": "intl", "crm": "intl", "sales": "nat_dash", "service": "e164"}


def generate_phone_parts(
    country: np.ndarray, city_idx: np.ndarray, is_company: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Return columns cc, area, sub, mobile (all strings but mobile) for each entity."""
    n = len(country)
    area = np.empty(n, dtype=object)
    sub = np.empty(n, dtype=object)
    mobile = np.zeros(n, dtype=bool)
    u = rng.random(n)
    for cc in ("CN", "DE", "US"):
        m = country == cc
        k = int(m.sum())
        if k == 0:
            continue
        cities = CITIES[cc]
        codes_per_city = [c[4] for c in cities]
        pick = rng.integers(0, 2, k)
        land_area = np.array(
            [
                codes_per_city[c][p % len(codes_per_city[c])]
                for c, p in zip(city_idx[m], pick, strict=True)
            ],
            dtype=object,
        )
        if cc == "CN":
            mob = np.where(is_company[m], u[m] < 0.4, True)
            mob_area = np.array(CN_MOBILE_PREFIXES, dtype=object)[rng.integers(0, 10, k)]
            subs = rng.integers(10_000_000, 100_000_000, k).astype(str)
            land_subs = rng.integers(20_000_000, 80_000_000, k).astype(str)
            area[m] = np.where(mob, mob_area, land_area)
            sub[m] = np.where(mob, subs, land_subs)
        elif cc == "DE":
            mob = np.where(is_company[m], u[m] < 0.1, u[m] < 0.5)
            mob_area = np.array(DE_MOBILE_PREFIXES, dtype=object)[rng.integers(0, 10, k)]
            subs = rng.integers(10_000_000, 100_000_000, k).astype(str)
            land_subs = rng.integers(2_000_000, 10_000_000, k).astype(str)
            area[m] = np.where(mob, mob_area, land_area)
            sub[m] = np.where(mob, subs, land_subs)
        else:
            mob = np.zeros(k, dtype=bool)
            exch = rng.integers(200, 1000, k)
            exch = np.where(exch % 100 == 11, exch + 1, exch)
            exch = np.where(exch == 555, 556, exch)
            line = np.char.zfill(rng.integers(0, 10_000, k).astype(str), 4)
            area[m] = land_area
            sub[m] = np.char.add(exch.astype(str), line).astype(object)
        mobile[m] = mob
    cc_col = pd.Series(country).map(PHONE_CC).to_numpy(dtype=object)
    return pd.DataFrame({"cc": cc_col, "area": area, "sub": sub, "mobile": mobile})


def e164(parts: pd.DataFrame) -> pd.Series:
    """Clean E.164 form, e.g. '+493012345678'."""
    return "+" + parts["cc"] + parts["area"] + parts["sub"]


def _render(style: str, p: pd.DataFrame, country: pd.Series) -> pd.Series:
    cc, a, s = p["cc"], p["area"], p["sub"]
    cn_mobile = (country == "CN") & p["mobile"]
    trunk = a.where((country == "US") | cn_mobile, "0" + a)
    split = (country == "US") | cn_mobile
    cut = np.where(country == "CN", 4, 3)
    s1 = pd.Series([x[:c] for x, c in zip(s, cut, strict=True)], index=s.index, dtype=object)
    s2 = pd.Series([x[c:] for x, c in zip(s, cut, strict=True)], index=s.index, dtype=object)
    s_dash = (s1 + "-" + s2).where(split, s)
    s_space = (s1 + " " + s2).where(split, s)
    if style == "intl":
        us = "+" + cc + " " + a + "-" + s_dash
        return ("+" + cc + " " + a + " " + s_space).where(country != "US", us)
    if style == "e164":
        return "+" + cc + a + s
    if style == "intl00":
        return "00" + cc + " " + a + " " + s
    if style == "intl_dash":
        return "+" + cc + "-" + a + "-" + s
    if style == "intl_trunk":
        return "+" + cc + " (0)" + a + " " + s
    if style == "nat_dash":
        return trunk + "-" + s_dash
    if style == "nat_space":
        return trunk + " " + s_space
    if style == "nat_paren":
        return ("(" + trunk + ") " + s_dash).where(~cn_mobile, trunk + " " + s_space)
    if style == "nat_slash":
        return trunk + "/" + s
    if style == "nat_dots":
        return trunk + "." + s1 + "." + s2
    if style == "nat_compact":
        return trunk + s
    raise ValueError(style)


def format_phones(
    parts: pd.DataFrame,
    country: pd.Series,
    system: str,
    variant: np.ndarray,
    rng: np.random.Generator,
) -> pd.Series:
    """Render phones in the system's convention, or a random variant where ``variant``."""
    out = pd.Series(np.empty(len(parts), dtype=object), index=parts.index)
    style = np.full(len(parts), SYSTEM_STYLE[system], dtype=object)
    pick = rng.random(len(parts))
    for cc, styles in STYLES.items():
        m = (country.to_numpy() == cc) & variant
        choices = np.array(styles, dtype=object)
        style[m] = choices[(pick[m] * len(choices)).astype(int)]
    for st in sorted(set(style)):
        m = style == st
        if m.any():
            out[m] = _render(st, parts[m], country[m])
    return out

"""The true real-world customers ("entities"), built vectorised from pools."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from custpipe.demo import phones, taxids
from custpipe.demo.pools import LocalePool, build_pools
from custpipe.demo.reference import (
    CITIES,
    COMPANY_MAILBOX,
    COMPANY_TLD,
    COUNTRY_OF_LOCALE,
    FREE_MAIL,
    INDUSTRIES,
    LEGAL_FORMS,
    LEGAL_FORMS_BY_COUNTRY,
    LOCALE_WEIGHTS,
    LOCALES,
    POSTCODE_WIDTH,
    TIER_WEIGHTS,
    TIERS,
    ZH_BRAND,
)


def _pick(arr, k: int, rng: np.random.Generator) -> np.ndarray:
    arr = np.asarray(arr, dtype=object)
    return arr[rng.integers(0, len(arr), k)]


def _s(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=object))


def _company_names(cc: str, k: int, city_idx: np.ndarray, pool: LocalePool, rng):
    """Return (base name, ascii slug, legal form key, industry index) for k companies."""
    ind = rng.integers(0, len(INDUSTRIES), k)
    keys, weights = LEGAL_FORMS_BY_COUNTRY[cc]
    form = np.asarray(keys, dtype=object)[rng.choice(len(keys), k, p=weights)]
    pattern = rng.random(k)
    if cc == "CN":
        b1 = rng.integers(0, len(ZH_BRAND), k)
        b2 = rng.integers(0, len(ZH_BRAND), k)
        brand = _s([ZH_BRAND[i][0] + ZH_BRAND[j][0] for i, j in zip(b1, b2, strict=True)])
        brand_py = _s([ZH_BRAND[i][1] + ZH_BRAND[j][1] for i, j in zip(b1, b2, strict=True)])
        city_short = _s([CITIES["CN"][c][0].rstrip("市") for c in city_idx])
        word = _s([INDUSTRIES[i][1] for i in ind])
        word_py = _s([INDUSTRIES[i][2] for i in ind])
        base = (city_short + brand + word).where(pattern < 0.5, brand + word)
        slug = brand_py + word_py
    else:
        fi = rng.integers(0, len(pool.family), (2, k))
        f1, f2 = _s(pool.family[fi[0]]), _s(pool.family[fi[1]])
        a1, a2 = _s(pool.family_ascii[fi[0]]), _s(pool.family_ascii[fi[1]])
        col = 3 if cc == "DE" else 4
        word = _s([INDUSTRIES[i][col] for i in ind])
        word_slug = _s([w.lower().replace(" ", "") for w in word])
        base = (f1 + " " + word).where(pattern < 0.5, f1 + " & " + f2)
        base = base.where(pattern < 0.8, f1 + "-" + f2 + " " + word)
        slug = (a1 + "-" + word_slug).where(pattern < 0.5, a1 + "-" + a2)
    return base, slug, form, ind


def _persons(k: int, pool: LocalePool, rng):
    gi = rng.integers(0, len(pool.given), k)
    fi = rng.integers(0, len(pool.family), k)
    return (
        _s(pool.given[gi]),
        _s(pool.family[fi]),
        _s(pool.given_ascii[gi]),
        _s(pool.family_ascii[fi]),
    )


def _streets(cc: str, k: int, pool: LocalePool, rng) -> pd.Series:
    name = _s(_pick(pool.streets, k, rng))
    if cc == "CN":
        return name + _s(rng.integers(1, 999, k).astype(str)) + "号"
    if cc == "DE":
        no = _s(rng.integers(1, 180, k).astype(str))
        suffix = _s(np.where(rng.random(k) < 0.08, "a", ""))
        return name + " " + no + suffix
    return _s(rng.integers(1, 9999, k).astype(str)) + " " + name


def _postcodes(cc: str, city_idx: np.ndarray, rng) -> np.ndarray:
    lo = np.array([CITIES[cc][c][2] for c in city_idx])
    hi = np.array([CITIES[cc][c][3] for c in city_idx])
    code = lo + (rng.random(len(city_idx)) * (hi - lo + 1)).astype(int)
    return np.char.zfill(code.astype(str), POSTCODE_WIDTH[cc]).astype(object)


def _country_block(
    cc: str, idx: np.ndarray, is_company: np.ndarray, pool: LocalePool, rng
) -> pd.DataFrame:
    k = len(idx)
    comp = is_company[idx]
    city_idx = rng.integers(0, len(CITIES[cc]), k)
    given, family, given_a, family_a = _persons(k, pool, rng)
    cgiven, cfamily, _, _ = _persons(k, pool, rng)
    base, slug, form, ind = _company_names(cc, k, city_idx, pool, rng)
    person_name = family + given if cc == "CN" else given + " " + family
    form_text = _s([LEGAL_FORMS[f][0] for f in form])
    company_name = base + form_text if cc == "CN" else base + " " + form_text
    domain = slug + COMPANY_TLD[cc]
    mailbox = _s(_pick(COMPANY_MAILBOX, k, rng))
    digits = _s(np.where(rng.random(k) < 0.3, rng.integers(1, 99, k).astype(str), ""))
    person_mail = given_a + "." + family_a + digits + "@" + _s(_pick(FREE_MAIL[cc], k, rng))
    if cc == "CN":
        tax = taxids.uscc(city_idx, rng)
    elif cc == "DE":
        tax = taxids.de_vat(k, rng)
    else:
        tax = taxids.us_ein(k, rng)
    comp_s = pd.Series(comp)
    block = pd.DataFrame(
        {
            "row": idx,
            "name": company_name.where(comp_s, person_name),
            "name_base": base.where(comp_s, person_name),
            "legal_form": _s(form).where(comp_s, ""),
            "given": given,
            "family": family,
            "contact_given": cgiven.where(comp_s, given),
            "contact_family": cfamily.where(comp_s, family),
            "street": _streets(cc, k, pool, rng),
            "old_street": _streets(cc, k, pool, rng),
            "city": _s([CITIES[cc][c][0] for c in city_idx]),
            "region": _s([CITIES[cc][c][1] for c in city_idx]),
            "postcode": _postcodes(cc, city_idx, rng),
            "old_postcode": _postcodes(cc, city_idx, rng),
            "city_idx": city_idx,
            "email": (mailbox + "@" + domain).where(comp_s, person_mail),
            "website": ("www." + domain).where(comp_s, ""),
            "tax_id": _s(tax).where(comp_s, ""),
            "industry": ind,
        }
    )
    return block


def _unique_person_mail(email: pd.Series, is_company: pd.Series) -> pd.Series:
    """A personal mailbox belongs to one person: later namesakes get their row number added.

    (Company addresses are role mailboxes like info@, shared by design.)
    """
    clash = ~is_company & email.duplicated(keep="first") & (email != "")
    local, domain = email[clash].str.split("@", n=1).str[0], email[clash].str.split("@", n=1).str[1]
    fixed = local + "." + email.index[clash].astype(str) + "@" + domain
    return email.where(~clash, fixed)


def build_entities(
    n: int, rng: np.random.Generator, business_date: dt.date, seed: int = 42
) -> pd.DataFrame:
    """Build ``n`` true customers; one row per entity, columns are clean values."""
    pools = build_pools(seed)
    locale = np.asarray(LOCALES, dtype=object)[rng.choice(3, n, p=LOCALE_WEIGHTS)]
    country = pd.Series(locale).map(COUNTRY_OF_LOCALE).to_numpy(dtype=object)
    is_company = rng.random(n) < 0.7
    tier = np.asarray(TIERS, dtype=object)[rng.choice(3, n, p=TIER_WEIGHTS)]
    age = rng.integers(30, 3650, n)
    created = np.datetime64(business_date, "D") - age.astype("timedelta64[D]")
    blocks = []
    for cc in ("CN", "US", "DE"):
        idx = np.flatnonzero(country == cc)
        blocks.append(_country_block(cc, idx, is_company, pools[cc], rng))
    attrs = pd.concat(blocks, ignore_index=True).sort_values("row").reset_index(drop=True)
    ent = pd.DataFrame(
        {
            "entity_id": _s(np.char.add("E", np.char.zfill(np.arange(1, n + 1).astype(str), 8))),
            "locale": locale,
            "country": country,
            "is_company": is_company,
            "tier": tier,
            "created": created,
        }
    )
    ent = pd.concat([ent, attrs.drop(columns="row")], axis=1)
    ent["email"] = _unique_person_mail(ent["email"], ent["is_company"])
    parts = phones.generate_phone_parts(country, ent["city_idx"].to_numpy(), is_company, rng)
    ent["phone_cc"] = parts["cc"].to_numpy()
    ent["phone_area"] = parts["area"].to_numpy()
    ent["phone_sub"] = parts["sub"].to_numpy()
    ent["phone_mobile"] = parts["mobile"].to_numpy()
    ent["phone"] = phones.e164(parts).to_numpy()
    return ent

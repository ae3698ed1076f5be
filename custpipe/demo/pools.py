"""Pre-generated value pools (Faker is called only here, a few thousand times)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from faker import Faker

from custpipe.demo.reference import ZH_FAMILY, ZH_GIVEN

POOL_SIZE = 2000


@dataclass(frozen=True)
class LocalePool:
    """Name and street pools of one locale, as numpy object arrays."""

    given: np.ndarray
    family: np.ndarray
    given_ascii: np.ndarray
    family_ascii: np.ndarray
    streets: np.ndarray


_ASCII = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
        "Ä": "Ae",
        "Ö": "Oe",
        "Ü": "Ue",
        "é": "e",
        "è": "e",
        "á": "a",
        "ó": "o",
        "í": "i",
    }
)


def to_ascii_slug(text: str) -> str:
    """Lower-case ASCII slug of a latin name (umlauts transliterated)."""
    text = text.translate(_ASCII).lower()
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def _unique(values: list[str]) -> np.ndarray:
    return np.array(sorted(set(values)), dtype=object)


def _latin_pool(locale: str, seed: int) -> LocalePool:
    fake = Faker(locale)
    fake.seed_instance(seed)
    given = _unique([fake.first_name() for _ in range(POOL_SIZE)])
    family = _unique([fake.last_name() for _ in range(POOL_SIZE)])
    streets = _unique([fake.street_name() for _ in range(POOL_SIZE)])
    return LocalePool(
        given=given,
        family=family,
        given_ascii=np.array([to_ascii_slug(g) for g in given], dtype=object),
        family_ascii=np.array([to_ascii_slug(f) for f in family], dtype=object),
        streets=streets,
    )


def _zh_pool(seed: int) -> LocalePool:
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    streets = _unique([fake.street_name() for _ in range(POOL_SIZE // 2)])
    # given names: one or two characters from the curated list (with pinyin)
    singles = [(c, p) for c, p in ZH_GIVEN]
    doubles = [(c1 + c2, p1 + p2) for c1, p1 in ZH_GIVEN for c2, p2 in ZH_GIVEN if c1 != c2]
    given_pairs = singles + doubles
    return LocalePool(
        given=np.array([g for g, _ in given_pairs], dtype=object),
        family=np.array([f for f, _ in ZH_FAMILY], dtype=object),
        given_ascii=np.array([p for _, p in given_pairs], dtype=object),
        family_ascii=np.array([p for _, p in ZH_FAMILY], dtype=object),
        streets=streets,
    )


@lru_cache(maxsize=4)
def build_pools(seed: int) -> dict[str, LocalePool]:
    """Build (and cache) the per-country pools for a seed."""
    return {
        "CN": _zh_pool(seed),
        "US": _latin_pool("en_US", seed + 1),
        "DE": _latin_pool("de_DE", seed + 2),
    }

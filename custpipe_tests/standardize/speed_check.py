"""Speed check for the standardisers (a script, not a test).

Builds 1,000,000 rows by repeating ~50,000 distinct synthetic values per column, runs
every standardiser over all rows and prints the time per function and in total.

    .venv/bin/python -m custpipe_tests.standardize.speed_check [rows] [distinct]
"""

from __future__ import annotations

import random
import sys
import time

import numpy as np
import pandas as pd

from custpipe import standardize as st

ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
ZH_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
ZH_FORMS = ["有限公司", "有限責任公司", "股份有限公司", "集团有限公司", "科技有限公司"]
ZH_CITIES = ["北京", "上海", "深圳", "广州", "杭州", "成都", "南京", "武汉"]
DE_NAMES = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"]
DE_FORMS = ["GmbH", "G.m.b.H.", "AG", "GmbH & Co. KG", "e.K.", "UG (haftungsbeschränkt)"]
EN_NAMES = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay"]
EN_FORMS = ["Inc.", "Incorporated", "LLC", "Ltd.", "Corp.", "Co., Ltd.", "PLC"]
COUNTRIES = {
    "CN": ["CN", "China", "中国", "中華人民共和國", "PRC", "CHN"],
    "DE": ["DE", "Germany", "Deutschland", "BRD", "德国", "DEU"],
    "US": ["US", "USA", "U.S.A.", "United States", "美国", "Vereinigte Staaten"],
}


def _row(rng: random.Random, i: int) -> dict[str, object]:
    cc = rng.choice(["CN", "DE", "US"])
    country = rng.choice(COUNTRIES[cc])
    if cc == "CN":
        company = f"{rng.choice(ZH_CITIES)}{rng.choice(ZH_GIVEN)}{i}{rng.choice(ZH_FORMS)}"
        family, given = rng.choice(ZH_SURNAMES), rng.choice(ZH_GIVEN) + rng.choice(ZH_GIVEN)
        phone = rng.choice(["138{:08d}", "0086 139-{:08d}", "+86 10 6{:07d}"]).format(i % 10**7)
        tax = f"9111{i:013d}"[:17] + rng.choice("0123456789ABCDEFGHJ")
        postcode = f"{100000 + i % 800000}"
    elif cc == "DE":
        company = f"{rng.choice(DE_NAMES)} {i} {rng.choice(DE_FORMS)}"
        family, given = rng.choice(DE_NAMES), rng.choice(["Jürgen", "Anna", "Lukas", "Sophie"])
        phone = rng.choice(["030 {:07d}", "+49 (0)89 {:07d}", "0049 40/{:07d}"]).format(i % 10**7)
        tax = f"DE{100000000 + i:09d}"
        postcode = f"{1067 + i % 98000}"
    else:
        company = f"{rng.choice(EN_NAMES)} {i} {rng.choice(EN_FORMS)}"
        family, given = rng.choice(["Smith", "Jones", "Brown"]), rng.choice(["John", "Mary"])
        phone = f"({rng.choice([212, 415, 312])}) 555-{i % 10**4:04d}"
        tax = f"{10 + i % 80:02d}-{i:07d}"
        postcode = f"{501 + i % 99000:05d}"
    email = f"{given}.{family}{i}@Example{i % 97}.COM"
    return {
        "company": company,
        "given": given,
        "family": family,
        "country": country,
        "phone": phone,
        "email": email,
        "tax": tax,
        "postcode": postcode,
    }


def build(rows: int, distinct: int, seed: int = 7) -> pd.DataFrame:
    """`rows` rows made of `distinct` distinct records repeated, with some missing values."""
    rng = random.Random(seed)
    base = pd.DataFrame([_row(rng, i) for i in range(distinct)], dtype=object)
    picks = np.random.default_rng(seed).integers(0, distinct, size=rows)
    df = base.iloc[picks].reset_index(drop=True)
    mask = np.random.default_rng(seed + 1).random(df.shape) < 0.02
    return df.mask(mask, None)


def run(df: pd.DataFrame) -> dict[str, float]:
    """Run every standardiser over `df`; return seconds per function."""
    timings: dict[str, float] = {}

    def timed(name, func, *args):
        start = time.perf_counter()
        func(*args)
        timings[name] = time.perf_counter() - start

    timed("clean_text", st.clean_text, df["company"])
    timed("fold_key", st.fold_key, df["company"])
    timed("company_name_key", st.company_name_key, df["company"])
    timed("legal_form", st.legal_form, df["company"])
    timed("clean_name", st.clean_name, df["company"])
    timed("person_name_key", st.person_name_key, df["given"], df["family"])
    timed("to_iso2", st.to_iso2, df["country"])
    timed("to_e164", st.to_e164, df["phone"], df["country"])
    timed("normalize_email", st.normalize_email, df["email"])
    timed("normalize_tax_id", st.normalize_tax_id, df["tax"], df["country"])
    timed("normalize_postcode", st.normalize_postcode, df["postcode"], df["country"])
    return timings


def main(argv: list[str]) -> None:
    rows = int(argv[0]) if argv else 1_000_000
    distinct = int(argv[1]) if len(argv) > 1 else 50_000
    df = build(rows, distinct)
    timings = run(df)
    for name, seconds in timings.items():
        print(f"{name:20s} {seconds:7.2f} s")
    print(f"{'total':20s} {sum(timings.values()):7.2f} s  ({rows:,} rows, ~{distinct:,} distinct)")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Regenerate custpipe/standardize/_country_data.py (dev tool, not a test).

    .venv/bin/python -m custpipe_tests.standardize.make_country_data \\
        > custpipe/standardize/_country_data.py
"""

from faker.providers.date_time import Provider
from phonenumbers.geodata.locale import LOCALE_DATA

EXTRA_A3 = {
    "HK": "HKG",
    "MO": "MAC",
    "PR": "PRI",
    "GU": "GUM",
    "VI": "VIR",
    "AS": "ASM",
    "SS": "SSD",
    "FO": "FRO",
    "GL": "GRL",
    "GI": "GIB",
    "BM": "BMU",
    "KY": "CYM",
    "AW": "ABW",
    "CW": "CUW",
    "RE": "REU",
    "GP": "GLP",
    "MQ": "MTQ",
    "GF": "GUF",
    "NC": "NCL",
    "PF": "PYF",
    "IM": "IMN",
    "JE": "JEY",
    "GG": "GGY",
    "AX": "ALA",
    "VG": "VGB",
    "TC": "TCA",
    "AI": "AIA",
    "MS": "MSR",
    "FK": "FLK",
    "SH": "SHN",
    "YT": "MYT",
    "PM": "SPM",
    "WF": "WLF",
    "MP": "MNP",
    "CK": "COK",
    "NU": "NIU",
    "TK": "TKL",
    "NF": "NFK",
    "CX": "CXR",
    "CC": "CCK",
    "EH": "ESH",
    "SX": "SXM",
    "BQ": "BES",
    "MF": "MAF",
    "BL": "BLM",
    "SJ": "SJM",
    "AQ": "ATA",
    "BV": "BVT",
    "HM": "HMD",
    "GS": "SGS",
    "IO": "IOT",
    "TF": "ATF",
    "UM": "UMI",
    "PN": "PCN",
}
faker = {c.alpha_2_code: c for c in Provider.countries}


def name(d, lang):
    v = d.get(lang)
    for _ in range(3):
        if not (v and v.startswith("*")):
            break
        v = d.get(v[1:])
    return v


rows = []
for a2 in sorted(LOCALE_DATA):
    if a2 == "AN":
        continue
    d = LOCALE_DATA[a2]
    a3 = faker[a2].alpha_3_code if a2 in faker else EXTRA_A3[a2]
    names = []
    for n in (name(d, "aa"), name(d, "de"), name(d, "zh"), faker[a2].name if a2 in faker else None):
        if n and not n.startswith("*") and n not in names:
            names.append(n)
    rows.append((a2, a3, tuple(names)))

out = [
    '"""ISO 3166-1 country table: alpha-2 -> (alpha-3, names).',
    "",
    "Generated data (do not edit by hand): alpha-2 codes and English/German/Chinese names",
    "from phonenumbers' geocoder locale data, alpha-3 codes from Faker's country list",
    "plus a small hand list for territories. Hand-curated aliases live in countries.py.",
    '"""',
    "",
    "COUNTRIES: dict[str, tuple[str, tuple[str, ...]]] = {",
]
for a2, a3, names in rows:
    line = f"    {a2!r}: ({a3!r}, {names!r}),"
    if len(line) > 80:
        out.append(f"    {a2!r}: (")
        out.append(f"        {a3!r},")
        out.append("        (")
        for n in names:
            out.append(f"            {n!r},")
        out.append("        ),")
        out.append("    ),")
    else:
        out.append(line)
out.append("}")
print("\n".join(out))

"""Row checks of mapped values: currency codes, duplicate ids, names a party type is read from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from custpipe.mapping.issues import MappingIssue
from custpipe.standardize import legal_form
from custpipe.standardize.currencies import ISO_4217


def currencies(
    values: pd.Series, source: str, column: str, issues: list[MappingIssue]
) -> tuple[pd.Series, pd.Series]:
    """(upper-cased codes, rows whose code is not an ISO 4217 currency)."""
    codes = values.map(lambda v: str(v).strip().upper() if v is not None else None)
    unknown = codes.notna() & ~codes.isin(ISO_4217)
    if unknown.any():
        counts = codes[unknown].value_counts()
        issues.append(
            MappingIssue(
                source,
                "currency",
                column,
                "currency code not in ISO 4217 (kept, row flagged): map the source's code "
                "to ISO 4217 with a crosswalk",
                int(unknown.sum()),
                tuple(str(c)[:8] for c in counts.index[:5]),
                rule="currency_unknown:currency",
            )
        )
    return codes, unknown


def duplicate_ids(ids: pd.Series) -> pd.Series:
    """Rows whose id, trimmed of spaces and leading zeros, is another row's too (within
    `ids`; staging checks the whole staged source again, see stage.flag_duplicate_ids)."""
    key = ids.map(lambda v: (str(v).strip().lstrip("0") or "0") if v is not None else None)
    return key.notna() & key.duplicated(keep=False)


_LETTER_RE = r"[^\W\d_]"  # a letter of any script
# A spreadsheet formula: '=' first, or '+', '-', '@' before a function call ('@SUM('), a DDE
# call ('cmd|'), a cell reference ('A1', '$B$2') or an operator expression ('2+3', '(1)*2'); a
# spaced call ('@ sum (1)') only as the whole value. '+Plus Handels GmbH', '@Home GmbH',
# '+Plus (Deutschland) GmbH', '-Minus- Verlag' are names.
_FORMULA_RE = (
    r"^(?:=|[+\-@]\s*(?:[A-Za-z_][\w.]*\(|[A-Za-z_][\w.]*\s+\([^()]*\)\s*$"
    r"|[\w.]*\||\$?[A-Za-z]{1,3}\$?[0-9]+\b"
    r"|[0-9.(]+\s*[-+*/^&<>=]))"
)
# SQL injection text: a closed string literal before a statement end ("'); DROP", "x';"),
# or a statement end before a comment ('; --'). 'Smith; Jones & Co.' is a name.
_SQL_RE = r"'\s*\)*\s*;|;\s*--"


def looks_like_a_name(values: pd.Series) -> pd.Series:
    """True where a value has a letter (any script) and is no formula or SQL payload.

    `infer_party_type` leaves the others unknown — '12345', '1&1', '---',
    "'); DROP TABLE x;--", '=HYPERLINK(...)', '@SUM(A1)' — instead of calling them
    persons; the row is flagged `party_type_unknown:party_type` and quarantined. Brackets,
    semicolons, '&', '@' or '+' inside a name are fine. Computed once per distinct value.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques, dtype=object)
    is_str = text.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    stripped = text.where(is_str, "").astype(str).str.strip()
    ok = (
        stripped.str.contains(_LETTER_RE, regex=True)
        & ~stripped.str.contains(_FORMULA_RE, regex=True)
        & ~stripped.str.contains(_SQL_RE, regex=True)
    ).to_numpy(dtype=bool) & is_str
    return pd.Series(np.append(ok, False)[codes], index=values.index)


def infer_party_type(values: pd.Series) -> pd.Series:
    """'company' for a name with a legal form (GmbH, Inc., 有限公司 ...), else 'person';
    None where :func:`looks_like_a_name` is False."""
    kinds = legal_form(values).map(lambda f: "company" if f is not None else "person")
    return kinds.where(looks_like_a_name(values), None)

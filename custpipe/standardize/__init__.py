"""Standardisers: pure, vectorised functions over pandas Series (one module per attribute).

Each function computes over distinct values only and returns Series aligned on the input
index (object dtype, None for missing input; ``*_valid`` flags are None when absent).
"""

from custpipe.standardize.countries import to_iso2
from custpipe.standardize.emails import normalize_email
from custpipe.standardize.names import (
    clean_name,
    company_name_key,
    legal_form,
    person_name_key,
)
from custpipe.standardize.phones import to_e164
from custpipe.standardize.postcodes import normalize_postcode
from custpipe.standardize.tax_ids import normalize_tax_id
from custpipe.standardize.text import clean_text, fold_key

__all__ = [
    "clean_name",
    "clean_text",
    "company_name_key",
    "fold_key",
    "legal_form",
    "normalize_email",
    "normalize_postcode",
    "normalize_tax_id",
    "person_name_key",
    "to_e164",
    "to_iso2",
]

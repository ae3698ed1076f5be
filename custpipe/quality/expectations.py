"""Custom GX Core 1.x expectations for customer data (pandas execution engine).

Importing this module defines and registers, in GX's expectation and metric registries:

``expect_column_values_to_be_valid_e164`` (column map, kwargs ``column``)
    The value is an E.164 string (``+`` and 2-15 digits) that ``phonenumbers`` parses without a
    default region and considers a valid number.
``expect_column_values_to_have_valid_tax_id`` (column pair, kwargs ``column_A`` = tax ID,
``column_B`` = ISO-2 country)
    The tax ID passes its country's check-digit test (python-stdnum): CN USCC or resident ID,
    DE USt-IdNr. (a Steuernummer has no check digit: it cannot be verified and fails), US EIN,
    other EU member states EU VAT with the country's prefix, other countries their
    python-stdnum VAT module — the verdict of the staged flag ``tax_id_valid`` (one
    function). Countries without a validator pass; rows with a missing tax ID or country are
    skipped (``ignore_row_if="either_value_is_missing"``).
``expect_column_values_to_be_covered_by_crosswalk`` (column map, kwargs ``column``,
``value_set``)
    ``expect_column_values_to_be_in_set`` for codes that a source crosswalk translated: a
    value outside ``value_set`` is a source code without a crosswalk entry.
``expect_company_tax_id_where_required`` (multicolumn map, kwargs ``column_list`` =
``[party_type, country, tax_id]`` in this order, ``countries`` default ``["CN", "DE"]``)
    Companies (party type ``company``) in one of ``countries`` must have a tax ID that passes
    the check digit above; all other rows pass.
``expect_row_values_to_fit_published_columns`` (multicolumn map, kwargs ``column_list``,
``max_lengths`` aligned with it; both optional)
    Every value of the row fits its published text column of ``max_lengths[i]`` characters:
    not longer, no NUL character, encodable as UTF-8 (what PostgreSQL and MariaDB refuse in a
    VARCHAR). One expectation for all columns: GX's cost is per expectation and per row.
    Left out, both come from the table catalogue (every staged column published as free
    text, its published length); an explicit length may be stricter, never wider.
``expect_column_values_to_not_be_formula_payloads`` (multicolumn map, kwargs ``column_list``)
    No value of the row's text fields is a spreadsheet formula (:func:`looks_like_formula`:
    ``=`` at the start, or ``+``/``-``/``@`` followed by formula syntax). Placeholders such
    as ``-`` and names such as ``@Home GmbH`` pass; the CSV files custpipe writes still escape
    every cell that starts with a trigger (:mod:`custpipe.csv_safe`).

Suites that use these types only load once this module is imported (GX silently drops
expectation types it does not know): :mod:`custpipe.quality.gx_runner` calls :func:`register`
before it reads a suite. Every check is evaluated once per distinct value (or value pair) and
mapped back to the rows, so cost grows with the number of distinct values, not rows; the
length and formula checks are vectorised with pandas ``.str`` methods instead.

The plain checks :func:`is_valid_e164` and :func:`tax_id_check` need no GX and are public.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import phonenumbers  # noqa: E402
from great_expectations.compatibility import pydantic  # noqa: E402
from great_expectations.execution_engine import (  # noqa: E402
    PandasExecutionEngine,
    SparkDFExecutionEngine,
)
from great_expectations.expectations.core.expect_column_values_to_be_in_set import (  # noqa: E402
    ExpectColumnValuesToBeInSet,
)
from great_expectations.expectations.expectation import (  # noqa: E402
    ColumnMapExpectation,
    ColumnPairMapExpectation,
    MulticolumnMapExpectation,
)
from great_expectations.expectations.metrics.map_metric_provider import (  # noqa: E402
    ColumnMapMetricProvider,
    ColumnPairMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_condition_partial,
    column_pair_condition_partial,
    multicolumn_condition_partial,
)
from great_expectations.expectations.registry import (  # noqa: E402
    _registered_expectations,
    register_expectation,
)
from great_expectations.render import (  # noqa: E402
    LegacyRendererType,
    RenderedStringTemplateContent,
)
from great_expectations.render.renderer.renderer import renderer  # noqa: E402
from great_expectations.render.renderer_configuration import (  # noqa: E402
    RendererConfiguration,
    RendererValueType,
)

from custpipe.quality.published_length import complete_kwargs  # noqa: E402
from custpipe.standardize._util import evaluate  # noqa: E402
from custpipe.standardize.countries import iso2_value  # noqa: E402
from custpipe.standardize.phones import fast_valid_e164  # noqa: E402
from custpipe.standardize.tax_ids import tax_id_value  # noqa: E402

__all__ = [
    "CUSTOM_EXPECTATION_TYPES",
    "DEFAULT_TAX_ID_COUNTRIES",
    "ExpectColumnValuesToBeCoveredByCrosswalk",
    "ExpectColumnValuesToBeValidE164",
    "ExpectColumnValuesToHaveValidTaxId",
    "ExpectRowValuesToFitPublishedColumns",
    "ExpectColumnValuesToNotBeFormulaPayloads",
    "ExpectCompanyTaxIdWhereRequired",
    "fits_published_length",
    "formula_mask",
    "is_valid_e164",
    "looks_like_formula",
    "published_length_mask",
    "register",
    "tax_id_check",
]

#: Countries whose companies must carry a valid tax ID, unless a suite sets ``countries``.
DEFAULT_TAX_ID_COUNTRIES: tuple[str, ...] = ("CN", "DE")

_E164_RE = re.compile(r"\+[1-9]\d{1,14}")


# --------------------------------------------------------------------------- plain checks


def is_valid_e164(value: Any) -> bool:
    """True if ``value`` is an E.164 string that phonenumbers parses and deems valid."""
    if not isinstance(value, str) or not _E164_RE.fullmatch(value):
        return False
    if fast_valid_e164(value) == value:  # valid without the parser (proven equal in tests)
        return True
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value))
    except phonenumbers.NumberParseException:
        return False


def tax_id_check(tax_id: Any, country: Any) -> bool | None:
    """Check digit of ``tax_id`` for ``country``: True/False, None if not checkable.

    The staged flag's verdict (:func:`custpipe.standardize.tax_ids.tax_id_value`), so the
    flag that drives linking and this rule never disagree: CN USCC or resident ID; DE
    USt-IdNr. (a Steuernummer has no check digit and fails); US EIN; EU VAT (prefix optional,
    but if present the country's own); other countries their python-stdnum VAT module, None
    where there is none. A missing tax ID or country -> None.
    """
    if tax_id is None or country is None or pd.isna(tax_id) or pd.isna(country):
        return None
    iso2 = iso2_value(country)
    if iso2 is None:
        return None
    return tax_id_value(tax_id, iso2)[1]


def fits_published_length(value: Any, max_length: int) -> bool:
    """True if ``value`` can be stored in a published VARCHAR(``max_length``): at most that
    many characters, no NUL character, valid UTF-8 (no lone surrogate). Missing -> True."""
    if value is None or (isinstance(value, float) and value != value):
        return True
    text = str(value)
    if len(text) > max_length or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# What the quarantine rule calls a formula (the CSV escaping in custpipe.csv_safe stays
# stricter: it escapes every cell starting with a trigger). Optional leading tabs/CRs, then
# '=' followed by anything, or '+', '-', '@' followed by formula syntax: a function call
# NAME(, a bracket, a cell reference (A1, $A$1), a DDE command (cmd|) or a calculation (2+3).
# Full-width forms count as their ASCII ones. Placeholders ('-', '--', '-/-', '- Berlin'),
# names ('@Home GmbH', '+Plus Handels GmbH') and signed numbers ('+4930123456') are no formula.
_FORMULA_RE = re.compile(
    r"[\t\r]*(?:[=\uff1d]"
    r"|[-+@\uff0b\uff0d\uff20]\s*"
    r"(?:[^\W\d][\w.]*\("  # a function call: SUM(, HYPERLINK(, cmd(
    r"|[^\W\d][\w.]*\s+\([^()]*\)\s*$"  # a spaced call as the whole value: @ sum (1)
    r"|\("  # a bracketed expression
    r"|\$?[A-Za-z]{1,3}\$?\d+(?:[:!]|\W*$|\s*[-+*/^&<>=%])"  # a cell reference
    r"|[\w.]+\|"  # a DDE command: cmd|' /C calc'!A0
    r"|[\d.,]+\s*[-+*/^&<>=%]\s*[\w($.]"  # a calculation: -2+3, +1+1
    r"))"
)


def looks_like_formula(value: Any) -> bool:
    """True if ``value`` is text a spreadsheet would run as a formula (the quarantine rule
    ``no_formula_payload``): ``=`` at the start, or ``+``/``-``/``@`` followed by a function
    call, a bracket, a cell reference, a DDE command or a calculation, optionally after
    leading tabs/CRs. Placeholders such as ``-``, ``-/-`` and names such as ``@Home GmbH``
    are not."""
    return isinstance(value, str) and _FORMULA_RE.match(value) is not None


def formula_mask(values: pd.Series) -> np.ndarray:
    """:func:`looks_like_formula` per value as a bool array, vectorised (missing and non-text
    values are no formula)."""
    if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
        return np.zeros(len(values), dtype=bool)
    return values.str.match(_FORMULA_RE).to_numpy(dtype=bool, na_value=False)


def published_length_mask(values: pd.Series, max_length: int) -> np.ndarray:
    """:func:`fits_published_length` per value as a bool array, vectorised over text values
    (``.str`` methods); other values (numbers, dates) are checked one by one."""
    limit = int(max_length)
    if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
        return _map_unique(values, functools.partial(fits_published_length, max_length=limit))
    lengths = values.str.len()
    text = lengths.notna().to_numpy()
    ok = ~values.notna().to_numpy() | (lengths.le(limit).to_numpy() & text)
    ok &= ~values.str.contains(_UNPUBLISHABLE_RE).to_numpy(dtype=bool, na_value=False)
    other = values.notna().to_numpy() & ~text  # not a str: its str() decides
    if other.any():
        ok[other] = _map_unique(
            values[other], functools.partial(fits_published_length, max_length=limit)
        )
    return ok


# a NUL or a lone surrogate (not encodable as UTF-8): what PostgreSQL/MariaDB refuse in text
_UNPUBLISHABLE_RE = re.compile("[\x00\ud800-\udfff]")


# --------------------------------------------------------------------------- vectorisation


def _map_unique(values: pd.Series, func: Callable[[Any], bool]) -> np.ndarray:
    """``values.map(func)`` as a bool array, calling ``func`` once per distinct value.

    Many distinct values are spread over the CPU cores (see :func:`evaluate`).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    results = evaluate(func, [(v,) for v in uniques.tolist()]) if len(uniques) else []
    table = np.array([bool(r) for r in results] + [bool(func(None))], dtype=bool)
    return table[codes]  # code -1 (missing) picks the last slot


# Two rules check the same (tax ID, country) pairs of a frame: remember the answers (pure
# function of the pair, so a memo can never be stale), bounded in size.
_TAX_ID_MEMO: dict[tuple, bool | None] = {}
_TAX_ID_MEMO_LIMIT = 3_000_000


def _tax_id_results(tax: pd.Series, country: pd.Series) -> np.ndarray:
    """tax_id_check per row as an object array (True/False/None), once per distinct pair."""
    codes_t, uniq_t = pd.factorize(tax, use_na_sentinel=True)
    codes_c, uniq_c = pd.factorize(country, use_na_sentinel=True)
    uniq_t, uniq_c = list(uniq_t), list(uniq_c)  # plain lists: fast element access
    width = len(uniq_c) + 1
    combined = (codes_t.astype(np.int64) + 1) * width + (codes_c.astype(np.int64) + 1)
    keys, inverse = np.unique(combined, return_inverse=True)
    pairs = []
    for key in keys.tolist():
        ct, cc = divmod(key, width)
        pairs.append((None if ct == 0 else uniq_t[ct - 1], None if cc == 0 else uniq_c[cc - 1]))
    table = np.empty(len(keys), dtype=object)
    todo = [p for p in pairs if p not in _TAX_ID_MEMO]
    if len(_TAX_ID_MEMO) + len(todo) > _TAX_ID_MEMO_LIMIT:
        _TAX_ID_MEMO.clear()
        todo = pairs
    _TAX_ID_MEMO.update(zip(todo, evaluate(tax_id_check, todo) if todo else [], strict=True))
    table[:] = [_TAX_ID_MEMO[p] for p in pairs] if pairs else []
    return table[inverse.reshape(-1)]


# --------------------------------------------------------------------------- rendering


def _render_values(
    kwargs: dict[str, Any], params: tuple[str, ...], defaults: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """(template suffix, params as display strings) for the given configuration kwargs."""
    values: dict[str, str] = {}
    for name in params:
        value = kwargs.get(name, defaults.get(name))
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        values[name] = "" if value is None else str(value)
    mostly = kwargs.get("mostly")
    if isinstance(mostly, int | float) and not isinstance(mostly, bool) and mostly < 1:
        values["mostly_pct"] = f"{mostly * 100:g}"
        return " (at least $mostly_pct % of the rows).", values
    return ".", values


def _renderers(template: str, params: tuple[str, ...], defaults: dict[str, Any] | None = None):
    """Legacy (Data Docs) and atomic (rendered_content) prescriptive renderers for a template.

    Only configuration kwargs (column names, code lists, countries) are rendered, never
    values of the validated rows.
    """
    defaults = defaults or {}

    @classmethod  # type: ignore[misc]
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration=None,
        result=None,
        runtime_configuration: dict | None = None,
    ) -> list[RenderedStringTemplateContent]:
        config = configuration or (result.expectation_config if result else None)
        suffix, values = _render_values(
            dict(config.kwargs) if config is not None else {}, params, defaults
        )
        styling = runtime_configuration.get("styling", {}) if runtime_configuration else {}
        return [
            RenderedStringTemplateContent(
                content_block_type="string_template",
                string_template={
                    "template": template + suffix,
                    "params": values,
                    "styling": styling,
                },
            )
        ]

    @classmethod  # type: ignore[misc]
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration):
        suffix, values = _render_values(dict(renderer_configuration.kwargs), params, defaults)
        for name, value in values.items():
            renderer_configuration.add_param(
                name=name, param_type=RendererValueType.STRING, value=value
            )
        renderer_configuration.template_str = template + suffix
        return renderer_configuration

    return _prescriptive_renderer, _prescriptive_template


# --------------------------------------------------------------------------- metrics


# Each metric's row-wise check is one pandas function over the rows' columns (a frame) that
# returns a bool array; pandas calls it on the batch, Spark on each Arrow batch of its
# partitions (a vectorised UDF over a struct of the columns): the same code on both engines.


def _e164_mask(frame: pd.DataFrame) -> np.ndarray:
    return _map_unique(frame.iloc[:, 0], is_valid_e164)


def _tax_id_mask(frame: pd.DataFrame) -> np.ndarray:
    return _tax_id_results(frame.iloc[:, 0], frame.iloc[:, 1]) != False  # noqa: E712 (None passes)


def _company_tax_id_mask(
    frame: pd.DataFrame, countries: list[str] | None = None, party_type_value: str | None = None
) -> np.ndarray:
    party, country, tax = (frame.iloc[:, i] for i in range(3))
    wanted = list(DEFAULT_TAX_ID_COUNTRIES if countries is None else countries)
    required = (
        party.isin([party_type_value or "company"]).to_numpy() & country.isin(wanted).to_numpy()
    )
    ok = np.ones(len(frame), dtype=bool)
    if required.any():
        sub_tax, sub_country = tax[required], country[required]
        results = _tax_id_results(sub_tax, sub_country)
        present = sub_tax.notna().to_numpy()
        # None = no check digit known for that country: presence is enough
        ok[required] = present & (results != False)  # noqa: E712
    return ok


def _published_columns_mask(frame: pd.DataFrame, max_lengths: list[int]) -> np.ndarray:
    if len(max_lengths) != frame.shape[1]:
        raise ValueError(
            f"max_lengths has {len(max_lengths)} lengths for {frame.shape[1]} columns: "
            "give one length per column of column_list"
        )
    ok = np.ones(len(frame), dtype=bool)
    for i, limit in enumerate(max_lengths):
        ok &= published_length_mask(frame.iloc[:, i], limit)
    return ok


def _no_formula_mask(frame: pd.DataFrame) -> np.ndarray:
    ok = np.ones(len(frame), dtype=bool)
    for i in range(frame.shape[1]):
        ok &= ~formula_mask(frame.iloc[:, i])
    return ok


def _on_pandas(mask: Callable[..., np.ndarray], frame: pd.DataFrame, **kwargs) -> pd.Series:
    return pd.Series(mask(frame, **kwargs), index=frame.index)


def _on_spark(mask: Callable[..., np.ndarray], columns: list, **kwargs):
    """A Spark condition: `mask` over the columns, per Arrow batch, as a vectorised UDF."""
    from pyspark.sql import functions as F  # noqa: N812

    def batch_mask(rows: pd.DataFrame) -> pd.Series:
        return pd.Series(mask(rows, **kwargs), index=rows.index)

    udf = F.pandas_udf(batch_mask, "boolean")
    names = [f"c{i}" for i in range(len(columns))]  # positions: the masks read columns by place
    return udf(
        F.struct(
            *[
                F.col(c).alias(n) if isinstance(c, str) else c.alias(n)
                for c, n in zip(columns, names, strict=True)
            ]
        )
    )


class ColumnValuesValidE164(ColumnMapMetricProvider):
    """Row-wise: the value is a valid E.164 phone number (see :func:`is_valid_e164`)."""

    condition_metric_name = "column_values.custpipe_valid_e164"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs) -> pd.Series:
        return _on_pandas(_e164_mask, column.to_frame())

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column, **kwargs):
        return _on_spark(_e164_mask, [column])


class ColumnPairValuesValidTaxId(ColumnPairMapMetricProvider):
    """Row-wise: column_A (tax ID) passes the check digit of column_B (country)."""

    condition_metric_name = "column_pair_values.custpipe_valid_tax_id"
    condition_domain_keys = (
        "batch_id",
        "table",
        "column_A",
        "column_B",
        "row_condition",
        "condition_parser",
        "ignore_row_if",
    )
    condition_value_keys = ()

    @column_pair_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_A: pd.Series, column_B: pd.Series, **kwargs) -> pd.Series:  # noqa: N803
        return _on_pandas(_tax_id_mask, pd.concat([column_A, column_B], axis=1))

    @column_pair_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_A, column_B, **kwargs):  # noqa: N803
        return _on_spark(_tax_id_mask, [column_A, column_B])


# the domain of a multicolumn row condition (GX's keys, with ignore_row_if)
_MULTICOLUMN_DOMAIN_KEYS = (
    "batch_id",
    "table",
    "column_list",
    "row_condition",
    "condition_parser",
    "ignore_row_if",
)


class MulticolumnCompanyTaxIdWhereRequired(MulticolumnMapMetricProvider):
    """Row-wise: a company in one of ``countries`` has a tax ID with a valid check digit."""

    condition_metric_name = "multicolumn_values.custpipe_company_tax_id_where_required"
    condition_domain_keys = _MULTICOLUMN_DOMAIN_KEYS
    condition_value_keys = ("countries", "party_type_value")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, countries=None, party_type_value=None, **kwargs):
        return _on_pandas(
            _company_tax_id_mask,
            column_list,
            countries=countries,
            party_type_value=party_type_value,
        )

    @multicolumn_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_list, countries=None, party_type_value=None, **kwargs):
        return _on_spark(
            _company_tax_id_mask,
            column_list.columns,
            countries=countries,
            party_type_value=party_type_value,
        )


class MulticolumnFitPublishedColumns(MulticolumnMapMetricProvider):
    """Row-wise: every value fits its published text column (:func:`fits_published_length`)."""

    condition_metric_name = "multicolumn_values.custpipe_fit_published_columns"
    condition_domain_keys = _MULTICOLUMN_DOMAIN_KEYS
    condition_value_keys = ("max_lengths",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, max_lengths: list[int], **kwargs) -> pd.Series:
        return _on_pandas(_published_columns_mask, column_list, max_lengths=max_lengths)

    @multicolumn_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_list, max_lengths: list[int], **kwargs):
        return _on_spark(_published_columns_mask, column_list.columns, max_lengths=max_lengths)


class MulticolumnNoFormulaPayload(MulticolumnMapMetricProvider):
    """Row-wise: no value of the columns is a spreadsheet formula payload."""

    condition_metric_name = "multicolumn_values.custpipe_no_formula_payload"
    condition_domain_keys = _MULTICOLUMN_DOMAIN_KEYS
    condition_value_keys = ()

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs) -> pd.Series:
        return _on_pandas(_no_formula_mask, column_list)

    @multicolumn_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column_list, **kwargs):
        return _on_spark(_no_formula_mask, column_list.columns)


# --------------------------------------------------------------------------- expectations


class ExpectColumnValuesToBeValidE164(ColumnMapExpectation):
    """Expect column values to be valid international phone numbers in E.164 form.

    A value passes if it is ``+`` followed by 2-15 digits and ``phonenumbers`` parses it
    (without a default region) as a valid number. Nulls are skipped.
    """

    map_metric = "column_values.custpipe_valid_e164"
    success_keys = ("mostly",)
    args_keys = ("column",)
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["custpipe", "phone"],
        "contributors": ["custpipe"],
        "requirements": ["phonenumbers"],
    }

    class Config:
        title = "Expect column values to be valid E.164 phone numbers"

    _TEMPLATE = "$column values must be valid international phone numbers in E.164 form"
    _prescriptive_renderer, _prescriptive_template = _renderers(_TEMPLATE, ("column",))


class ExpectColumnValuesToHaveValidTaxId(ColumnPairMapExpectation):
    """Expect tax IDs (column_A) to pass the check digit of their country (column_B).

    CN: USCC or resident ID; DE: USt-IdNr.; US: EIN; other EU: EU VAT. Rows of other countries
    pass (no check known); rows with a missing tax ID or country are skipped by default.
    """

    ignore_row_if: Literal["both_values_are_missing", "either_value_is_missing", "neither"] = (
        "either_value_is_missing"
    )

    map_metric = "column_pair_values.custpipe_valid_tax_id"
    success_keys = ("column_A", "column_B", "ignore_row_if", "mostly")
    args_keys = ("column_A", "column_B")
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["custpipe", "tax id"],
        "contributors": ["custpipe"],
        "requirements": ["python-stdnum"],
    }

    class Config:
        title = "Expect tax IDs to pass their country's check digit"

    _TEMPLATE = "$column_A must pass the check-digit test of the country in $column_B"
    _prescriptive_renderer, _prescriptive_template = _renderers(_TEMPLATE, ("column_A", "column_B"))


class ExpectColumnValuesToBeCoveredByCrosswalk(ExpectColumnValuesToBeInSet):
    """Expect translated codes to be canonical codes (``value_set``) of a crosswalk.

    Works like ``expect_column_values_to_be_in_set``; a value outside ``value_set`` is a
    source code without a crosswalk entry. Nulls are skipped.
    """

    class Config:
        title = "Expect codes to be covered by the crosswalk"

    _TEMPLATE = (
        "$column codes must have a crosswalk entry: a code that is not one of the canonical "
        "codes $value_set has no crosswalk entry"
    )
    _prescriptive_renderer, _prescriptive_template = _renderers(_TEMPLATE, ("column", "value_set"))


class ExpectCompanyTaxIdWhereRequired(MulticolumnMapExpectation):
    """Expect companies in ``countries`` to have a tax ID that passes its check digit.

    ``column_list`` is ``[party_type, country, tax_id]`` (in this order). Rows whose party
    type is not ``party_type_value`` (default ``company``) or whose country is not in
    ``countries`` (default CN, DE) pass; for the others the tax ID must be present and pass
    the check of ``expect_column_values_to_have_valid_tax_id``.
    """

    countries: list[str] = pydantic.Field(default_factory=lambda: list(DEFAULT_TAX_ID_COUNTRIES))
    party_type_value: str = "company"
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "never"

    map_metric = "multicolumn_values.custpipe_company_tax_id_where_required"
    success_keys = ("countries", "party_type_value", "mostly")
    args_keys = ("column_list",)
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["custpipe", "tax id", "cross-field"],
        "contributors": ["custpipe"],
        "requirements": ["python-stdnum"],
    }

    class Config:
        title = "Expect companies in selected countries to have a valid tax ID"

    @pydantic.validator("column_list")
    def _three_columns(cls, v: list[str]) -> list[str]:  # noqa: N805
        if len(v) != 3:  # noqa: PLR2004
            raise ValueError("column_list must be [party_type, country, tax_id]")
        return v

    _TEMPLATE = (
        "Rows whose party type is $party_type_value and whose country is one of $countries "
        "must have a tax ID that passes its check digit (columns $column_list)"
    )
    _prescriptive_renderer, _prescriptive_template = _renderers(
        _TEMPLATE,
        ("column_list", "countries", "party_type_value"),
        {"countries": DEFAULT_TAX_ID_COUNTRIES, "party_type_value": "company"},
    )


class ExpectRowValuesToFitPublishedColumns(MulticolumnMapExpectation):
    """Expect every value of ``column_list`` to fit its published text column.

    ``max_lengths[i]`` is the length of the column that ``column_list[i]`` is published to. A
    value longer than that, holding a NUL character or not encodable as UTF-8 fails:
    PostgreSQL and MariaDB would refuse it and the whole publish with it. Missing values pass.
    Left out, ``max_lengths`` are the catalogue's lengths and ``column_list`` every staged
    column published as free text (:mod:`custpipe.quality.published_length`).
    """

    max_lengths: list[int]
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = (
        "all_values_are_missing"
    )

    map_metric = "multicolumn_values.custpipe_fit_published_columns"
    success_keys = ("max_lengths", "mostly")
    args_keys = ("column_list", "max_lengths")
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["custpipe", "publish", "cross-field"],
        "contributors": ["custpipe"],
        "requirements": [],
    }

    class Config:
        title = "Expect row values to fit the published columns"

    @pydantic.root_validator(pre=True)
    def _from_the_catalogue(cls, values: dict[str, Any]) -> dict[str, Any]:  # noqa: N805
        # column_list and max_lengths left out of the suite come from custpipe.catalogue
        return complete_kwargs(values)

    @pydantic.validator("max_lengths")
    def _positive(cls, v: list[int]) -> list[int]:  # noqa: N805
        if not v or any(n < 1 for n in v):
            raise ValueError("max_lengths must hold one positive length per column")
        return v

    _TEMPLATE = (
        "Values of $column_list must fit their published columns: at most $max_lengths "
        "characters (in that order), no NUL character"
    )
    _prescriptive_renderer, _prescriptive_template = _renderers(
        _TEMPLATE, ("column_list", "max_lengths")
    )


class ExpectColumnValuesToNotBeFormulaPayloads(MulticolumnMapExpectation):
    """Expect no value of the text columns ``column_list`` to be a spreadsheet formula.

    A value starting with ``=``, or with ``+``, ``-``, ``@`` followed by a function call, a
    cell reference, a DDE command or a calculation (also after tabs/CRs), would run as a
    formula where the published table is opened in a spreadsheet (see
    :func:`looks_like_formula`). Rows whose columns are all missing are skipped.
    """

    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = (
        "all_values_are_missing"
    )

    map_metric = "multicolumn_values.custpipe_no_formula_payload"
    success_keys = ("mostly",)
    args_keys = ("column_list",)
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["custpipe", "security", "cross-field"],
        "contributors": ["custpipe"],
        "requirements": [],
    }

    class Config:
        title = "Expect text values not to be spreadsheet formulas"

    _TEMPLATE = (
        "Values of $column_list must not be spreadsheet formulas ('=' at the start, or "
        "'+', '-', '@' followed by a function call, cell reference or calculation)"
    )
    _prescriptive_renderer, _prescriptive_template = _renderers(_TEMPLATE, ("column_list",))


_CLASSES = (
    ExpectColumnValuesToBeValidE164,
    ExpectColumnValuesToHaveValidTaxId,
    ExpectColumnValuesToBeCoveredByCrosswalk,
    ExpectCompanyTaxIdWhereRequired,
    ExpectRowValuesToFitPublishedColumns,
    ExpectColumnValuesToNotBeFormulaPayloads,
)

#: The expectation types this module provides (as used in suite JSON ``type``).
CUSTOM_EXPECTATION_TYPES: tuple[str, ...] = tuple(c.expectation_type for c in _CLASSES)


def register() -> tuple[str, ...]:
    """Make sure the custom expectation types are in GX's registry; idempotent.

    Defining the classes (i.e. importing this module) already registers them; this puts them
    back should anything have replaced them, and returns the registered type names.
    """
    for cls in _CLASSES:
        if _registered_expectations.get(cls.expectation_type) is not cls:
            register_expectation(cls)
    return CUSTOM_EXPECTATION_TYPES

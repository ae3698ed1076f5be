"""The catalogue: hostile inputs by kind, each with the answer custpipe must give.

Every case writes its input in the case's own deployment (see `harness.Bench`) on top of a
baseline night of good rows (ids G01..G09); bad rows get their own ids.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pandas as pd

from custpipe.config import ConfigError
from custpipe.mapping.apply import MappingError
from custpipe.quality.gx_runner import GxRunnerError
from custpipe.sources.extract import SchemaDriftError
from custpipe.sources.readers import SourceReadError
from custpipe.standardize import company_name_key
from custpipe_tests.catalogue.harness import (
    CUSTOMER_COLUMNS,
    GOOD_CUSTOMERS,
    GOOD_IDS,
    GOOD_ORDERS,
    SOURCE,
    Accepted,
    Blocked,
    Case,
    Held,
    OrderAccepted,
    OrderFlagged,
    Quarantined,
    Raises,
    bad,
    bad_order,
    csv_text,
)

READ = (SourceReadError, SchemaDriftError)
CLEAR = (SourceReadError, SchemaDriftError, ConfigError, MappingError, GxRunnerError)
IDS_PLUS = lambda *extra: tuple(GOOD_IDS) + extra  # noqa: E731
FILE = "customers.csv"


def _customers(*rows, **fmt):
    return lambda b: b.write_customers(list(rows), **fmt)


def _raw_bytes(data: bytes, name: str = FILE, **reader):
    def build(b):
        (b.dir / name).write_bytes(data)
        b.reader(path=f"{{sources}}/{SOURCE}/{name}", **reader)

    return build


def _good_csv(**fmt) -> str:
    return csv_text(GOOD_CUSTOMERS, CUSTOMER_COLUMNS, **fmt)


def _accept(row_id, column, value, *rows, **fmt):
    """A case whose bad row `row_id` is accepted with a standardised value."""
    return dict(
        build=_customers(*rows, **fmt),
        expect=Accepted(row_id, column, value),
        ids=IDS_PLUS(*[r["id"] for r in rows]),
    )


def _quarantine(rule, *rows):
    return dict(
        build=_customers(*rows),
        expect=Quarantined(rule, tuple(r["id"] for r in rows)),
        ids=IDS_PLUS(*[r["id"] for r in rows]),
    )


# ---- file format ----------------------------------------------------------------------------


def _two_header_only_nights(b):
    b.write_customers([], good=False)
    first = b.night()
    assert "volume_stable" in first.blocked, first
    return b.night  # the second empty night must block too: the baseline is not the empty one


def _duplicate_header(b):
    text = _good_csv().replace("street,city", "name,city", 1)
    b.customers_path.write_text(text, encoding="utf-8")


def _truncated(b):
    text = _good_csv() + "X01,Abgeschnitten GmbH,C,x@y.de"
    b.customers_path.write_text(text, encoding="utf-8")


def _extra_field(b):
    text = _good_csv() + "X01,Zu Viel GmbH,C,,,,,,DE,,VIP,2026-11-01,surplus\n"
    b.customers_path.write_text(text, encoding="utf-8")


def _unclosed_quote(b):
    text = _good_csv() + 'X01,"Offen GmbH,C,,,,,,DE,,VIP,2026-11-01\n'
    b.customers_path.write_text(text, encoding="utf-8")


def _mixed_newlines(b):
    lines = _good_csv().splitlines()
    ends = ["\r\n", "\n", "\r\n", "\n"]
    text = "".join(line + ends[i % 4] for i, line in enumerate(lines))
    b.customers_path.write_bytes(text.encode())


def _ten_mb_field(b):
    b.write_customers([bad("X01", name="Riesen " + "x" * 10_000_000 + " GmbH")])


def _blank_lines(b):
    lines = _good_csv().splitlines()
    b.customers_path.write_text("\n".join(lines[:4] + ["", "   ", ""] + lines[4:]) + "\n")


FILE_FORMAT = [
    Case(
        "empty_file",
        "file-format",
        _raw_bytes(b""),
        Raises(SourceReadError, (SOURCE, FILE, "empty")),
    ),
    Case(
        "header_only",
        "file-format",
        lambda b: b.write_customers([], good=False),
        Blocked("volume"),
        ids=(),
        validated_baseline=True,
    ),
    Case(
        "header_only_two_nights",
        "file-format",
        _two_header_only_nights,
        Blocked("volume"),
        ids=(),
        validated_baseline=True,
    ),
    Case("truncated_last_row", "file-format", _truncated, Raises(READ, (SOURCE, FILE, "line 11"))),
    Case(
        "row_with_extra_field", "file-format", _extra_field, Raises(READ, (SOURCE, FILE, "line 11"))
    ),
    Case(
        "unclosed_quote", "file-format", _unclosed_quote, Raises(READ, (SOURCE, FILE, "quotechar"))
    ),
    Case(
        "wrong_delimiter",
        "file-format",
        _customers(delimiter=";"),
        Raises(READ, (SOURCE, FILE, "delimiter", "';'")),
    ),
    Case(
        "duplicate_header_column",
        "file-format",
        _duplicate_header,
        Raises(READ, (SOURCE, FILE, "'name'", "twice")),
    ),
    Case(
        "quoted_newline_in_name",
        "file-format",
        **_accept("X01", "name", "Zwei Zeilen GmbH", bad("X01", name="Zwei\nZeilen GmbH")),
    ),
    Case(
        "utf8_bom_undeclared",
        "file-format",
        _raw_bytes(b"\xef\xbb\xbf" + _good_csv().encode()),
        Accepted("G01", "country", "DE"),
    ),
    Case(
        "utf8_bom_declared_utf8",
        "file-format",
        _raw_bytes(b"\xef\xbb\xbf" + _good_csv().encode(), encoding="utf-8"),
        Accepted("G01", "country", "DE"),
    ),
    Case(
        "utf16_with_bom_declared",
        "file-format",
        _raw_bytes(_good_csv().encode("utf-16"), encoding="utf-16"),
        Accepted("G03", "city", "Köln"),
    ),
    Case(
        "utf16_with_bom_undeclared",
        "file-format",
        _raw_bytes(_good_csv().encode("utf-16")),
        Accepted("G03", "city", "Köln"),
    ),
    Case("mixed_newlines", "file-format", _mixed_newlines, Accepted("G09", "country", "DE")),
    Case(
        "crlf_newlines", "file-format", _customers(newline="\r\n"), Accepted("G03", "city", "Köln")
    ),
    Case("blank_lines_between_rows", "file-format", _blank_lines, Accepted("G05", "country", "DE")),
    Case(
        "nul_byte_in_field",
        "file-format",
        **_accept("X01", "name", "Nullbyte GmbH", bad("X01", name="Null\x00byte GmbH")),
    ),
    Case(
        "ten_mb_field",
        "file-format",
        _ten_mb_field,
        Quarantined("value_fits_published_length", ("X01",)),
        ids=IDS_PLUS("X01"),
    ),
    Case(
        "binary_file_as_csv",
        "file-format",
        _raw_bytes(bytes(range(256)) * 40, encoding="utf-8"),
        Raises(SourceReadError, (SOURCE, FILE, "encoding")),
    ),
    Case(
        "semicolon_file_declared",
        "file-format",
        lambda b: (b.write_customers([], delimiter=";"), b.reader(delimiter=";")),
        Accepted("G02", "country", "DE"),
    ),
    Case(
        "missing_file",
        "file-format",
        lambda b: b.customers_path.unlink(),
        Raises(SourceReadError, (SOURCE, FILE, "not found")),
    ),
]

# ---- encoding -------------------------------------------------------------------------------


def _latin1(b, declared):
    text = csv_text(GOOD_CUSTOMERS + [bad("X01", name="Müller Söhne GmbH")], CUSTOMER_COLUMNS)
    b.customers_path.write_bytes(text.encode("latin-1"))
    if declared:
        b.reader(encoding=declared)


def _gbk_as_latin1(b):
    rows = [
        bad(f"X{i:02d}", name=n)
        for i, n in enumerate(
            ["北京华为技术有限公司", "上海浦东发展银行股份有限公司", "深圳市腾讯计算机系统有限公司"]
            * 8
        )
    ]
    text = csv_text(GOOD_CUSTOMERS + rows, CUSTOMER_COLUMNS)
    b.customers_path.write_bytes(text.encode("gb18030"))
    b.reader(encoding="latin-1")


def _jsonl_latin1(b):
    b.write_jsonl(
        [],
        raw=json.dumps(bad("X01", name="Müller GmbH"), ensure_ascii=False).encode("latin-1")
        + b"\n",
    )
    b.reader(encoding="utf-8")


ENCODING = [
    Case(
        "latin1_declared_utf8",
        "encoding",
        lambda b: _latin1(b, "utf-8"),
        Raises(SourceReadError, (SOURCE, FILE, "encoding")),
    ),
    Case(
        "latin1_undeclared_detected",
        "encoding",
        lambda b: _latin1(b, None),
        Accepted("X01", "name", "Müller Söhne GmbH"),
        ids=IDS_PLUS("X01"),
    ),
    Case(
        "latin1_declared",
        "encoding",
        lambda b: _latin1(b, "latin-1"),
        Accepted("X01", "name", "Müller Söhne GmbH"),
        ids=IDS_PLUS("X01"),
    ),
    Case(
        "gbk_declared_latin1",
        "encoding",
        _gbk_as_latin1,
        Raises(SourceReadError, (SOURCE, FILE, "encoding", "gb")),
    ),
    Case(
        "jsonl_latin1_declared_utf8",
        "encoding",
        _jsonl_latin1,
        Raises(SourceReadError, (SOURCE, "customers.jsonl", "line 10", "encoding")),
    ),
    Case(
        "unknown_encoding_name",
        "encoding",
        lambda b: (b.write_customers([]), b.reader(encoding="utf-9")),
        Raises(CLEAR, (SOURCE, "utf-9", "encoding")),
    ),
    Case(
        "cp1252_quotes_declared_utf8",
        "encoding",
        _raw_bytes(
            _good_csv().encode() + "X01,\u201eQuote\u201c GmbH,C,,,,,,DE,,VIP,\n".encode("cp1252"),
            encoding="utf-8",
        ),
        Raises(SourceReadError, (SOURCE, FILE, "encoding")),
    ),
]

# ---- JSON Lines -----------------------------------------------------------------------------
J = "customers.jsonl"


def _jsonl(*lines, raw=b""):
    return lambda b: b.write_jsonl(list(lines), raw=raw)


JSON = [
    Case(
        "jsonl_line_is_array",
        "file-format",
        _jsonl('["X01", "Array GmbH"]'),
        Raises(SourceReadError, (SOURCE, J, "line 10", "object")),
    ),
    Case(
        "jsonl_line_is_scalar",
        "file-format",
        _jsonl("42"),
        Raises(SourceReadError, (SOURCE, J, "line 10", "object")),
    ),
    Case(
        "jsonl_line_is_null",
        "file-format",
        _jsonl("null"),
        Raises(SourceReadError, (SOURCE, J, "line 10", "object")),
    ),
    Case(
        "jsonl_lone_surrogate",
        "encoding",
        _jsonl('{"id": "X01", "name": "Kaputt \\ud800 GmbH", "country": "DE"}'),
        Raises(SourceReadError, (SOURCE, J, "line 10", "surrogate")),
    ),
    Case(
        "jsonl_broken_line",
        "file-format",
        _jsonl('{"id": "X01", "name": '),
        Raises(SourceReadError, (SOURCE, J, "line 10")),
    ),
    Case(
        "jsonl_empty_file",
        "file-format",
        lambda b: (
            (b.dir / J).write_bytes(b""),
            b.reader(kind="jsonl", path="{sources}/hostile/" + J),
        ),
        Blocked("volume"),
        ids=(),
        validated_baseline=True,
    ),
    Case(
        "jsonl_nested_object",
        "file-format",
        lambda b: (
            b.write_jsonl(
                [json.dumps({**bad("X01"), "city": None, "address": {"city": "Dresden"}})]
            ),
            b.rule("city", "address.city"),
        ),
        Accepted("X01", "city", "Dresden"),
        ids=IDS_PLUS("X01"),
    ),
    Case(
        "jsonl_huge_integer_id",
        "ids",
        _jsonl(json.dumps(bad("X01"))[:-1] + ', "id": 123456789012345678901234567890}'),
        Accepted("123456789012345678901234567890", "country", "DE"),
        ids=IDS_PLUS("123456789012345678901234567890"),
    ),
    Case(
        "jsonl_nul_escape_in_name",
        "text",
        _jsonl(json.dumps(bad("X01", name="Null\u0000byte GmbH"))),
        Accepted("X01", "name", "Nullbyte GmbH"),
        ids=IDS_PLUS("X01"),
    ),
    Case(
        "jsonl_with_bom",
        "encoding",
        lambda b: (
            b.write_jsonl([]),
            (b.dir / J).write_bytes(b"\xef\xbb\xbf" + (b.dir / J).read_bytes()),
        ),
        Accepted("G01", "country", "DE"),
    ),
]

# ---- ids ------------------------------------------------------------------------------------
IDS = [
    Case(
        "missing_id", "ids", _customers(bad("")), Blocked("source_id_required"), ids=IDS_PLUS(None)
    ),
    Case(
        "duplicate_id",
        "ids",
        _customers(bad("G05")),
        Held("duplicate|unique", ("G05",)),
        ids=IDS_PLUS("G05"),
    ),
    Case(
        "duplicate_id_by_whitespace",
        "ids",
        _customers(bad(" G05 ")),
        Held("source_id_unique|duplicate", ("G05",)),
        ids=IDS_PLUS("G05"),
    ),
    Case(
        "duplicate_id_by_leading_zeros",
        "ids",
        _customers(bad("0042"), bad("42")),
        Quarantined("duplicate_id", ("0042", "42")),
        ids=IDS_PLUS("0042", "42"),
    ),
    Case("id_with_leading_zeros_kept", "ids", **_accept("007", "source_id", "007", bad("007"))),
    Case("unicode_id", "ids", **_accept("客户-٣", "country", "DE", bad("客户-٣"))),
]

# ---- dates ----------------------------------------------------------------------------------


def _dates(value, fmt=None):
    def build(b):
        good = [
            dict(r, updated_at=pd.Timestamp(r["updated_at"]).strftime(fmt or "%Y-%m-%d"))
            for r in GOOD_CUSTOMERS
        ]
        b.write_customers([bad("X01", updated_at=value)], good=good)
        if fmt:
            b.rule("source_updated_at", {"column": "updated_at", "date_format": fmt})

    return build


def _date_case(case_id, value, want, fmt=None):
    return Case(
        case_id,
        "dates",
        _dates(value, fmt),
        Accepted("X01", "source_updated_at", want),
        ids=IDS_PLUS("X01"),
    )


def _no_date_issue(b, night):
    """A placeholder for "no date" is no error in the data (it may be reported as such)."""
    wrong = [
        i for i in night.issues if i.field == "source_updated_at" and "not a date" in i.problem
    ]
    assert not wrong, [str(i) for i in night.issues]


def _date_issue(b, night):
    found = [i for i in night.issues if i.field == "source_updated_at"]
    assert found and "updated_at" in str(found[0]) and found[0].rows == 1, [
        str(i) for i in night.issues
    ]


def _excel(b):
    from datetime import datetime

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(CUSTOMER_COLUMNS)
    for row in GOOD_CUSTOMERS + [bad("X01")]:
        values = [row[c] for c in CUSTOMER_COLUMNS]
        values[-1] = datetime(2026, 3, 4, 5, 6, 7) if row["id"] == "X01" else values[-1]
        sheet.append(values)
    book.save(b.dir / "customers.xlsx")
    b.reader(kind="xlsx", path="{sources}/hostile/customers.xlsx")


def _excel_number_id(b):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(CUSTOMER_COLUMNS)
    for row in GOOD_CUSTOMERS + [bad("X01")]:
        values = [row[c] for c in CUSTOMER_COLUMNS]
        if row["id"] == "X01":
            values[0] = 4711.0
        sheet.append(values)
    book.save(b.dir / "customers.xlsx")
    b.reader(kind="xlsx", path="{sources}/hostile/customers.xlsx")


def _timezone(b):
    b.write_customers([bad("X01", updated_at="2026-11-20T10:00:00")])
    b.source["timezone"] = "Asia/Shanghai"


DATES = [
    Case(
        "sap_zero_date",
        "dates",
        _dates("00000000", "%Y%m%d"),
        Accepted("X01", "source_updated_at", None),
        ids=IDS_PLUS("X01"),
        check=_no_date_issue,
    ),
    Case(
        "date_0001_01_01",
        "dates",
        _dates("0001-01-01"),
        Accepted("X01", "source_updated_at", None),
        ids=IDS_PLUS("X01"),
        check=_no_date_issue,
    ),
    Case(
        "date_9999_12_31",
        "dates",
        _dates("9999-12-31"),
        Accepted("X01", "source_updated_at", None),
        ids=IDS_PLUS("X01"),
        check=_no_date_issue,
    ),
    Case(
        "date_31_02",
        "dates",
        _dates("31.02.2026", "%d.%m.%Y"),
        Accepted("X01", "source_updated_at", None),
        ids=IDS_PLUS("X01"),
        check=_date_issue,
    ),
    Case(
        "date_not_a_date",
        "dates",
        _dates("gestern"),
        Accepted("X01", "source_updated_at", None),
        ids=IDS_PLUS("X01"),
        check=_date_issue,
    ),
    _date_case("date_with_offset_to_utc", "2026-11-20T10:00:00+08:00", "2026-11-20 02:00:00"),
    _date_case("date_declared_format", "20.11.2026", "2026-11-20 00:00:00", "%d.%m.%Y"),
    Case(
        "naive_stamp_in_source_timezone",
        "dates",
        _timezone,
        Accepted("X01", "source_updated_at", "2026-11-20 02:00:00"),
        ids=IDS_PLUS("X01"),
    ),
    Case(
        "excel_date_cell",
        "dates",
        _excel,
        Accepted("X01", "source_updated_at", "2026-03-04 05:06:07"),
        ids=IDS_PLUS("X01"),
        check=_no_date_issue,
    ),
    Case(
        "excel_number_id",
        "ids",
        _excel_number_id,
        Accepted("4711", "country", "DE"),
        ids=IDS_PLUS("4711"),
    ),
]

# ---- amounts and currencies (orders) ---------------------------------------------------------


DECIMAL_COMMA = {"decimal": ",", "group": "."}


def _orders(*rows, number_format=None):
    def build(b):
        b.write_customers([])
        if number_format:
            b.source["orders"]["number_format"] = number_format
            rows_ = [dict(r, amount=r["amount"].replace(".", ",")) for r in GOOD_ORDERS]
            b.write_orders(list(rows), good=rows_)
        else:
            b.write_orders(list(rows))

    return build


def _flag(case_id, field, *rows, **kw):
    return Case(
        case_id,
        "amounts",
        _orders(*rows, **kw),
        OrderFlagged(field, tuple(r["order_no"] for r in rows)),
    )


def _ok(case_id, column, value, row, **kw):
    return Case(
        case_id, "amounts", _orders(row, **kw), OrderAccepted(row["order_no"], column, value)
    )


AMOUNTS = [
    _flag("amount_decimal_comma_undeclared", "amount", bad_order("X01", amount="12,50")),
    _flag("amount_german_thousands_undeclared", "amount", bad_order("X01", amount="1.234,56")),
    _ok(
        "amount_decimal_comma_declared",
        "amount",
        12.5,
        bad_order("X01", amount="12,50"),
        number_format=DECIMAL_COMMA,
    ),
    _ok(
        "amount_german_thousands_declared",
        "amount",
        1234.56,
        bad_order("X01", amount="1.234,56"),
        number_format=DECIMAL_COMMA,
    ),
    _flag(
        "amount_ambiguous_under_decimal_comma",
        "amount",
        bad_order("X01", amount="1,234.56"),
        number_format=DECIMAL_COMMA,
    ),
    _ok("amount_sap_trailing_minus", "amount", -12.5, bad_order("X01", amount="12.50-")),
    _ok(
        "amount_thousands_separator_point_format",
        "amount",
        1234.56,
        bad_order("X01", amount="1,234.56"),
    ),
    _flag("amount_nan", "amount", bad_order("X01", amount="NaN")),
    _flag("amount_inf", "amount", bad_order("X01", amount="Infinity")),
    _flag("amount_minus_inf", "amount", bad_order("X01", amount="-inf")),
    _flag("amount_huge", "amount", bad_order("X01", amount="1e308")),
    _flag("amount_text", "amount", bad_order("X01", amount="zwölf")),
    _ok("amount_negative_credit_note", "amount", -50.0, bad_order("X01", amount="-50.00")),
    _flag("currency_unknown", "currency", bad_order("X01", currency="XYZ")),
    _ok("currency_lower_case", "currency", "EUR", bad_order("X01", currency="eur")),
]

# ---- text -----------------------------------------------------------------------------------
_ACME_KEY = company_name_key(pd.Series(["Acme GmbH"])).iloc[0]


def _infer(*rows):
    def build(b):
        b.write_customers(list(rows))
        b.rule("party_type", {"column": "name", "transform": "infer_party_type"})

    return build


TEXT = [
    Case(
        "terminal_escape_in_name",
        "text",
        **_accept("X01", "name", "Rot GmbH", bad("X01", name="\x1b[31mRot\x1b[0m GmbH")),
    ),
    Case(
        "zero_width_in_name",
        "text",
        **_accept("X01", "name", "Acme GmbH", bad("X01", name="Ac\u200bme\u200d GmbH")),
    ),
    Case(
        "bidi_override_in_name",
        "text",
        **_accept("X01", "name", "Acme GmbH", bad("X01", name="\u202eAcme GmbH\u202c")),
    ),
    Case(
        "bidi_isolate_in_name",
        "text",
        **_accept("X01", "name", "Acme GmbH", bad("X01", name="\u2067Acme GmbH\u2069")),
    ),
    Case(
        "homoglyph_name_key",
        "text",
        **_accept("X01", "name_key", _ACME_KEY, bad("X01", name="\u0410\u0441me GmbH")),
    ),
    Case(
        "fullwidth_name",
        "text",
        **_accept("X01", "name", "Acme GmbH", bad("X01", name="Ａｃｍｅ ＧｍｂＨ")),
    ),
    Case(
        "html_payload_kept_as_text",
        "text",
        **_accept("X01", "name", "<b>Fett</b> GmbH", bad("X01", name="<b>Fett</b> GmbH")),
    ),
    Case(
        "formula_payload_equals",
        "security",
        **_quarantine(
            "no_formula_payload", bad("X01", name='=HYPERLINK("http://x.example","klick")')
        ),
    ),
    Case(
        "formula_payload_at",
        "security",
        **_quarantine("no_formula_payload", bad("X01", name="@SUM(A1:A9)")),
    ),
    Case(
        "formula_payload_plus",
        "security",
        **_quarantine("no_formula_payload", bad("X01", street="+cmd|' /C calc'!A0")),
    ),
    Case(
        "formula_payload_minus",
        "security",
        **_quarantine("no_formula_payload", bad("X01", city="-2+3+cmd|' /C calc'!A0")),
    ),
    Case(
        "sql_payload_party_type",
        "security",
        _infer(bad("X01", name="'); DROP TABLE x;--")),
        Quarantined("party_type|formula|name", ("X01",)),
        ids=IDS_PLUS("X01"),
    ),
    Case(
        "formula_payload_party_type",
        "security",
        _infer(bad("X01", name='=HYPERLINK("http://x.example")')),
        Quarantined("party_type|formula|name", ("X01",)),
        ids=IDS_PLUS("X01"),
    ),
    Case("whitespace_only_name", "text", **_quarantine("name_required", bad("X01", name="   "))),
    Case("punctuation_only_name", "text", **_quarantine("name_key", bad("X01", name="-- .. --"))),
    Case(
        "emoji_in_name",
        "text",
        **_accept("X01", "name", "Sonne ☀ GmbH", bad("X01", name="Sonne ☀ GmbH")),
    ),
    Case(
        "arabic_name_kept",
        "text",
        **_accept("X01", "name", "شركة الاتصالات", bad("X01", name="شركة الاتصالات")),
    ),
    Case(
        "very_long_name",
        "text",
        **_quarantine("value_fits_published_length", bad("X01", name="Lang" * 2000 + " GmbH")),
    ),
    Case(
        "unknown_segment_code",
        "text",
        **_quarantine("crosswalk_covered", bad("X01", segment="Platinum")),
    ),
    Case(
        "unknown_party_code",
        "text",
        **_quarantine("crosswalk_covered:party_type", bad("X01", kind="Z")),
    ),
    Case("unknown_country", "text", **_quarantine("country", bad("X01", country="Atlantis"))),
    Case(
        "country_name_german",
        "text",
        **_accept("X01", "country", "DE", bad("X01", country="Deutschland")),
    ),
]

# ---- phones, e-mails, tax IDs ---------------------------------------------------------------


def _one_tax_answer(vat):
    def check(b, night):
        from custpipe.quality.gx_runner import validate_frame

        staged = b.staged()
        row = staged[staged["source_id"] == "X01"]
        outcome = validate_frame(
            row.reset_index(drop=True),
            "staged_customers",
            expectations_dir=b.settings.expectations_dir,
            gx_dir=b.settings.gx_dir,
            build_docs=False,
        )
        gx_ok = outcome.outcome("tax_id_check_digit").failed == 0
        assert bool(row.iloc[0]["tax_id_valid"]) == gx_ok, (vat, row.iloc[0]["tax_id_valid"], gx_ok)

    return check


IDENTIFIERS = [
    Case(
        "phone_with_letters",
        "text",
        **_accept("X01", "phone_valid", False, bad("X01", phone="+49 30 CALL-NOW")),
    ),
    Case(
        "phone_national_format",
        "text",
        **_accept("X01", "phone", "+49301234567", bad("X01", phone="030 1234567")),
    ),
    Case(
        "unicode_email",
        "text",
        **_accept("X01", "email_valid", True, bad("X01", email="jürgen@müller.de")),
    ),
    Case(
        "invalid_email",
        "text",
        **_accept("X01", "email_valid", False, bad("X01", email="kein-at-zeichen.de")),
    ),
    Case(
        "steuernummer_one_answer",
        "text",
        **_accept("X01", "tax_id", "2181508150", bad("X01", vat_id="2181508150")),
        check=_one_tax_answer("2181508150"),
    ),
    Case(
        "gb_vat_one_answer",
        "text",
        _customers(bad("X01", vat_id="GB980780684", country="GB")),
        Accepted("X01", "country", "GB"),
        ids=IDS_PLUS("X01"),
        check=_one_tax_answer("GB980780684"),
    ),
    Case(
        "garbage_tax_id", "text", **_accept("X01", "tax_id_valid", False, bad("X01", vat_id="DE12"))
    ),
]

# ---- security and database -------------------------------------------------------------------


def _expr(expr):
    return lambda b: (b.write_customers([]), b.rule("city", {"expr": expr}))


def _injection(b):
    target = b.root / "pwned.csv"
    b.write_customers([])
    b.rule(
        "city",
        {"expr": f"1)::VARCHAR AS v FROM raw; COPY (SELECT 42) TO '{target}'; SELECT (\"N\""},
    )

    def run():
        try:
            return b.night()
        finally:
            assert not target.exists(), "the expression wrote a file"

    return run


def _sqlite_source(b, query=None, url_env=None, url=None):
    db = b.dir / "crm.sqlite"
    con = sqlite3.connect(db)
    con.execute(f"CREATE TABLE customers ({', '.join(f'{c!r} TEXT' for c in CUSTOMER_COLUMNS)})")
    con.executemany(
        f"INSERT INTO customers VALUES ({', '.join('?' * len(CUSTOMER_COLUMNS))})",
        [tuple(r[c] for c in CUSTOMER_COLUMNS) for r in GOOD_CUSTOMERS],
    )
    con.commit()
    con.close()
    b.source["connection"] = {"url_env": url_env, "url": url or f"sqlite:///{db}"}
    b.source["customers"]["reader"] = (
        {"kind": "sql", "query": query} if query else {"kind": "sql", "table": "customers"}
    )


def _table_intact(b, night):
    con = sqlite3.connect(b.dir / "crm.sqlite")
    try:
        assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == len(GOOD_CUSTOMERS)
    finally:
        con.close()


def _url(value, env="CUSTPIPE_CATALOGUE_URL"):
    def build(b):
        _sqlite_source(b, url_env=env)
        b.monkeypatch.setenv(env, value)

    return build


PASSWORD = "S3cr3t@Pa:ss/w0rd"
MASKED = "S3cr3t"


def _symlink(b):
    outside = b.root / "elsewhere.csv"
    outside.write_text(_good_csv(), encoding="utf-8")
    b.customers_path.unlink(missing_ok=True)
    b.customers_path.symlink_to(outside)


def _target_noted(b, night):
    manifest = json.loads((night.landing["customers"] / "manifest.json").read_text())
    assert "elsewhere.csv" in json.dumps(manifest), manifest


def _disappearing(b):
    from custpipe.sources import readers

    b.write_customers([])
    real = readers._require_file

    def vanish(path, *args, **kwargs):
        real(path, *args, **kwargs)
        path.unlink()  # the export is moved away between the check and the read

    b.monkeypatch.setattr(readers, "_require_file", vanish)


SECURITY = [
    Case(
        "mapping_expr_injection",
        "security",
        _injection,
        Raises((MappingError, ConfigError), (SOURCE, "city", "expression")),
    ),
    Case(
        "mapping_expr_reads_files",
        "security",
        _expr("(SELECT count(*) FROM read_csv('/etc/passwd'))::VARCHAR"),
        Raises((MappingError, ConfigError), (SOURCE, "city", "expression")),
    ),
    Case("mapping_expr_plain", "security", _expr('upper("city")'), Accepted("G03", "city", "KÖLN")),
    Case(
        "reader_query_two_statements",
        "security",
        lambda b: _sqlite_source(b, query="SELECT * FROM customers; DROP TABLE customers"),
        Raises(CLEAR, (SOURCE, "query", "select")),
        check=_table_intact,
    ),
    Case(
        "reader_query_not_select",
        "security",
        lambda b: _sqlite_source(b, query="DELETE FROM customers RETURNING *"),
        Raises(CLEAR, (SOURCE, "query", "select")),
        check=_table_intact,
    ),
    Case(
        "reader_query_syntax_error",
        "database",
        lambda b: _sqlite_source(b, query="SELEC * FROM customers"),
        Raises(CLEAR, (SOURCE, "query", "not valid sql")),
    ),
    Case(
        "reader_query_ok",
        "database",
        lambda b: _sqlite_source(b, query="SELECT * FROM customers WHERE id <> 'G09'"),
        Accepted("G01", "country", "DE"),
        ids=tuple(GOOD_IDS[:-1]),
    ),
    Case(
        "symlinked_source_path",
        "security",
        _symlink,
        Accepted("G01", "country", "DE"),
        check=_target_noted,
    ),
    Case(
        "unknown_path_placeholder",
        "config",
        lambda b: b.reader(path="{sources}/hostile/customers_{yyyymmd}.csv"),
        Raises(CLEAR, (SOURCE, "{yyyymmd}", "{yyyymmdd}")),
    ),
    Case(
        "file_disappears_mid_read",
        "process",
        _disappearing,
        Raises(SourceReadError, (SOURCE, FILE)),
    ),
    Case(
        "url_unparseable",
        "database",
        _url("this is not a url"),
        Raises(CLEAR, (SOURCE, "CUSTPIPE_CATALOGUE_URL", "url")),
    ),
    Case(
        "url_postgres_scheme",
        "database",
        _url("postgres://u:pw@127.0.0.1:1/db"),
        Raises(CLEAR, (SOURCE, "postgresql://")),
    ),
    Case(
        "url_password_with_at_refused",
        "database",
        _url(f"postgresql://cp:{PASSWORD}@127.0.0.1:1/test"),
        Raises(SourceReadError, (SOURCE,)),
        secrets=(PASSWORD, MASKED, "Pa:ss", "w0rd"),
    ),
    Case(
        "database_refusing_connection",
        "database",
        _url("postgresql://cp:pw-refused-123@127.0.0.1:1/test"),
        Raises(SourceReadError, (SOURCE, "127.0.0.1")),
        secrets=("pw-refused-123",),
    ),
    Case(
        "database_unknown_host",
        "database",
        _url("postgresql://cp:pw-host-123@db.invalid:5432/test?connect_timeout=3"),
        Raises(SourceReadError, (SOURCE, "db.invalid")),
        secrets=("pw-host-123",),
    ),
    Case(
        "database_url_not_set",
        "config",
        lambda b: (
            _sqlite_source(b, url_env="CUSTPIPE_CATALOGUE_UNSET"),
            b.source["connection"].pop("url"),
        ),
        Raises(SourceReadError, (SOURCE, "CUSTPIPE_CATALOGUE_UNSET")),
    ),
    Case(
        "mariadb_wrong_credentials",
        "database",
        _url("mysql+pymysql://root:Wr0ng-Pa55@127.0.0.1:3306/test"),
        Raises(SourceReadError, (SOURCE, "127.0.0.1")),
        secrets=("Wr0ng-Pa55",),
        services="mariadb",
    ),
]

# ---- configuration --------------------------------------------------------------------------


def _suite(text):
    def build(b):
        b.write_customers([])
        (b.settings.expectations_dir / "staged_customers.json").write_text(text)

    return build


def _model(content):
    def build(b):
        from custpipe.matching.model import MatchModel

        path = b.settings.config_dir / "match_model.json"
        path.write_text(content)

        def run():
            model = MatchModel.load(path)
            model.settings_for(1000)

        return run

    return build


def _bad_suite_severity(b):
    suite = json.loads((b.settings.expectations_dir / "staged_customers.json").read_text())
    suite["expectations"][0]["meta"]["severity"] = "panic"
    _suite(json.dumps(suite))(b)


CONFIG = [
    Case(
        "malformed_suite_file",
        "config",
        _suite('{"name": "staged_customers", "expectat'),
        Raises(GxRunnerError, ("staged_customers.json", "json"), keeps="staged"),
    ),
    Case(
        "suite_unknown_severity",
        "config",
        _bad_suite_severity,
        Raises(GxRunnerError, ("staged_customers", "panic", "allowed"), keeps="staged"),
    ),
    Case(
        "model_file_wrong_structure",
        "config",
        _model('{"splink": {"comparisons": 3}, "custpipe": {"trained": 1}}'),
        Raises(ValueError, ("match_model.json", "train-model")),
    ),
    Case(
        "model_file_not_json",
        "config",
        _model("{not json"),
        Raises(ValueError, ("match_model.json", "retrain")),
    ),
    Case(
        "renamed_column",
        "config",
        lambda b: b.customers_path.write_text(_good_csv().replace(",zip,", ",plz,", 1)),
        Raises(SchemaDriftError, (SOURCE, "'zip'")),
    ),
    Case(
        "unknown_key_in_source_file",
        "config",
        lambda b: b.reader(delimeter=";"),
        Raises(ConfigError, ("hostile.yaml", "delimeter")),
    ),
    Case(
        "unknown_canonical_field",
        "config",
        lambda b: b.rule("shoe_size", "name"),
        Raises(ConfigError, ("hostile.yaml", "shoe_size")),
    ),
    Case(
        "two_character_delimiter",
        "config",
        lambda b: b.reader(delimiter=";;"),
        Raises(ConfigError, ("hostile.yaml", "delimiter")),
    ),
    Case(
        "chunk_size_zero",
        "config",
        lambda b: b.reader(chunk_size=0),
        Raises(ConfigError, ("hostile.yaml", "chunk_size")),
    ),
    Case(
        "unknown_transform",
        "config",
        lambda b: b.rule("city", {"column": "city", "transform": "rot13"}),
        Raises(ConfigError, ("hostile.yaml", "transform")),
    ),
]

# ---- warehouse and process ------------------------------------------------------------------


def _corrupt_warehouse(b):
    path = b.settings.warehouse_path
    data = bytearray(path.read_bytes())
    data[:4096] = os.urandom(4096)
    path.write_bytes(bytes(data))


def _warehouse_is_directory(b):
    b.settings.warehouse_path.unlink()
    b.settings.warehouse_path.mkdir()


KILL_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from custpipe import warehouse
    from custpipe_tests.catalogue.harness import Bench
    real = warehouse.append_rows
    def killed(con, table, frame):
        real(con, table, frame)
        if table == "staging.customers":  # inside stage_source's open transaction
            Path(sys.argv[2]).write_text("in transaction")
            os.kill(os.getpid(), signal.SIGKILL)
        return 0
    warehouse.append_rows = killed
    bench = Bench.__new__(Bench)
    import pickle
    bench.__dict__.update(pickle.loads(Path(sys.argv[1]).read_bytes()), monkeypatch=None)
    bench.night()
    """
)


def _killed_mid_staging(b):
    import pickle

    b.write_customers([bad("X01")])
    state = b.root / "bench.pickle"
    marker = b.root / "killed.txt"
    state.write_bytes(pickle.dumps({k: v for k, v in b.__dict__.items() if k != "monkeypatch"}))
    before = b.staged()["source_id"].tolist()

    def run():
        child = subprocess.run(
            [sys.executable, "-c", KILL_CHILD, str(state), str(marker)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        assert marker.exists(), "the child was not killed inside the staging transaction"
        assert sorted(b.staged()["source_id"]) == sorted(before)  # rolled back
        b.monkeypatch.undo()
        return b.night()  # the rerun recovers: stages the landing folder the child left

    return run


WAREHOUSE = [
    Case(
        "corrupt_warehouse",
        "warehouse",
        _corrupt_warehouse,
        Raises(CLEAR + (RuntimeError,), ("warehouse.duckdb", "restore"), keeps="warehouse"),
    ),
    Case(
        "warehouse_is_a_directory",
        "warehouse",
        _warehouse_is_directory,
        Raises(CLEAR + (RuntimeError,), ("warehouse.duckdb",), keeps="warehouse"),
    ),
    Case(
        "killed_mid_staging_rerun_recovers",
        "process",
        _killed_mid_staging,
        Accepted("X01", "country", "DE"),
        ids=IDS_PLUS("X01"),
    ),
]

CASES: list[Case] = (
    FILE_FORMAT
    + ENCODING
    + JSON
    + IDS
    + DATES
    + AMOUNTS
    + TEXT
    + IDENTIFIERS
    + SECURITY
    + CONFIG
    + WAREHOUSE
)

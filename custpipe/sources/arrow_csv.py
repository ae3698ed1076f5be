"""A delimited file read by Arrow's CSV reader, where it reads what pandas' reader reads.

The extraction of a CSV export (`custpipe.sources.readers.read_csv`) parses it with pandas
and turns every value into a Python string, which the landing then turns back into Arrow:
~1 s for the demo's 187,000-row sales export. Arrow's reader parses in C++ straight into the
Arrow strings the landing writes. The two readers agree on plain files; where they might
not, the file is left to pandas (None here), which then reads it, or fails, as it always
did: a NUL byte (pandas' reader sees none: they are removed first), a UTF-16/32 encoding, a
header Arrow names otherwise than the csv module or with an empty or quoted name, a file
too large to read whole (streamed by pandas in bounded memory), and any file Arrow refuses
(a row with fewer or more fields than the header — pandas pads a short one with nulls —,
an unterminated quote, an undecodable byte, a field longer than a block).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from custpipe.config import ReaderConfig

#: files up to this size are read whole (~2.5x their size in memory at the peak); larger
#: ones are streamed by pandas in chunks
MAX_BYTES = 128 << 20
_BLOCK = 1 << 24  # Arrow's parse block: a field longer than this makes Arrow refuse the file


def _has_nul(path: Path, block: int = 1 << 22) -> bool:
    with path.open("rb") as handle:
        while data := handle.read(block):
            if b"\x00" in data:
                return True
    return False


def _header(path: Path, encoding: str, reader: ReaderConfig) -> list[str]:
    """The first record as the csv module reads it (as readers._check_header does)."""
    with path.open(encoding=encoding, newline="") as handle:
        return next(csv.reader(handle, delimiter=reader.delimiter, quotechar=reader.quotechar), [])


def _plain(names: list[str], reader: ReaderConfig) -> bool:
    """Header names pandas and Arrow read alike: non-empty, unique, unquoted, one line."""
    return (
        bool(names)
        and len(set(names)) == len(names)
        and all(n and reader.quotechar not in n and "\n" not in n and "\r" not in n for n in names)
    )


def read_whole(path: Path, reader: ReaderConfig, encoding: str) -> list[pa.Table] | None:
    """The file's rows as Arrow tables of `reader.chunk_size` rows (string columns named as
    the header spells them, null for an empty field, as pandas reads them with dtype=str and
    only "" missing), or None: pandas must read this file (see the module docstring)."""
    if reader.kind != "csv" or "16" in encoding or "32" in encoding:
        return None
    if path.stat().st_size > MAX_BYTES or _has_nul(path):
        return None
    header = _header(path, encoding, reader)
    if not _plain(header, reader):
        return None
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(encoding=encoding, block_size=_BLOCK),
            parse_options=pa_csv.ParseOptions(
                delimiter=reader.delimiter,
                quote_char=reader.quotechar,
                double_quote=True,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=True,
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                check_utf8=True,
            ),
        )
    except (pa.ArrowException, UnicodeError, LookupError):
        return None  # pandas reads it, or names what is wrong with it
    if table.column_names != header or table.num_rows == 0:
        return None  # a header-only file: pandas' empty frame has the columns' types
    table = table.cast(pa.schema([(name, pa.string()) for name in header]))
    size = reader.chunk_size
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]

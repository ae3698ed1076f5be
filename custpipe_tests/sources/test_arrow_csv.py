"""A CSV export read by Arrow (custpipe.sources.arrow_csv) lands exactly what pandas' reader
lands, or is left to pandas, which reads it, or fails, as before."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from custpipe.config import ReaderConfig
from custpipe.sources import arrow_csv, readers
from custpipe.sources.readers import SourceReadError

HEADER = "id,name,city\n"

# (content, read by Arrow): each lands the same whichever reader reads it
FILES = {
    "plain": (HEADER + "1,Ann,Bern\n2,Bob,Chur\n", True),
    "quoted delimiters and newlines": (
        HEADER + '1,"Smith, Ann","Bern\nOst"\n2,"Bob ""B""",Chur\n',
        True,
    ),
    "empty and quoted-empty fields": (HEADER + '1,,""\n2," ",\n', True),
    "text after a closing quote": (HEADER + '1,"ab"cd,x\n', None),
    "a quote inside an unquoted field": (HEADER + '1,a"b,x\n', None),
    "crlf": (HEADER.replace("\n", "\r\n") + "1,Ann,Bern\r\n2,Bob,Chur\r\n", True),
    "lone cr": ("id,name,city\r1,Ann,Bern\r2,Bob,Chur\r", None),
    "mixed line ends": (HEADER + "1,Ann,Bern\r\n2,Bob,Chur\r3,Cy,Zug\n", None),
    "blank lines": (HEADER + "\n1,Ann,Bern\n\n\n2,Bob,Chur\n\n", True),
    "no final newline": (HEADER + "1,Ann,Bern\n2,Bob,Chur", True),
    "short row inside": (HEADER + "1,Ann\n2,Bob,Chur\n", False),
    "spaces-only line": (HEADER + "1,Ann,Bern\n   \n2,Bob,Chur\n", False),
    "a row of delimiters": (HEADER + ",,\n1,Ann,Bern\n", True),
    "spaces around values": (HEADER + " 1 , Ann ,Bern \n", True),
    "words pandas would read as missing by default": (
        HEADER + "NA,null,N/A\nnan,NaN,None\n#N/A,-nan,NULL\n",
        True,
    ),
    "numbers keep their spelling": (HEADER + "007,1e3,1.50\n-0,+1,0x1F\n", True),
    "spaced header": ("id , name,city\n1,Ann,Bern\n", True),
    "byte-order mark": ("\ufeff" + HEADER + "1,Ann,Bern\n", True),
    "non-ascii": (HEADER + "1,Zoë,Zürich\n2,张伟,北京\n", True),
    "a nul byte": (HEADER + "1,An\x00n,Bern\n", False),
    "header only": (HEADER, False),
    "leading blank line": ("\n" + HEADER + "1,Ann,Bern\n", None),
    "empty header name": ("id,,city\n1,Ann,Bern\n", False),
    "quoted header name": ('id,"name",city\n1,Ann,Bern\n', True),
    # pandas takes the first column as the index when the first row has one field more
    "a long first row": (HEADER + "1,Ann,Bern,extra\n", False),
}

# each fails the same whichever reader is asked for
BROKEN = {
    "a long row": HEADER + "1,Ann,Bern\n2,Bob,Chur,extra\n",
    "unterminated quote": HEADER + '1,"Ann,Bern\n',
    "truncated last row": HEADER + "1,Ann,Bern\n2,Bob",
    "header naming a column twice": "id,name,name\n1,Ann,Bern\n",
    "empty file": "",
}


def reader(path: Path, encoding: str | None = "utf-8", chunk_size: int = 2) -> ReaderConfig:
    return ReaderConfig(kind="csv", path=str(path), encoding=encoding, chunk_size=chunk_size)


def read(path: Path, config: ReaderConfig, arrow: bool) -> tuple[list, list[str]]:
    """(every chunk as column names and rows of values, None for missing; the notes)."""
    notes: list[str] = []
    chunks = []
    for chunk in readers.read_csv(path, config, "files", notes, arrow=arrow):
        if isinstance(chunk, pa.Table):
            assert all(f.type == pa.string() for f in chunk.schema)
            frame = chunk.to_pandas()
            frame = frame.astype(object).where(frame.notna(), None)
        else:
            frame = chunk
        chunks.append((list(frame.columns), frame.to_numpy().tolist()))
    return chunks, notes


def kinds(path: Path, config: ReaderConfig) -> set[type]:
    return {type(c) for c in readers.read_csv(path, config, "files", [], arrow=True)}


@pytest.mark.parametrize("name", FILES)
def test_arrow_lands_what_pandas_lands_or_leaves_the_file_to_pandas(tmp_path, name):
    content, by_arrow = FILES[name]
    path = tmp_path / "c.csv"
    path.write_bytes(content.encode("utf-8"))
    config = reader(path)
    assert read(path, config, arrow=True) == read(path, config, arrow=False)
    if by_arrow is not None:  # None: either reader may read it, with the same result
        assert kinds(path, config) == ({pa.Table} if by_arrow else {pd.DataFrame})


def test_a_multi_byte_export_in_its_declared_encoding(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes((HEADER + "1,张伟,北京\n2,李娜,上海\n3,王芳,杭州\n").encode("gbk"))
    config = reader(path, encoding="gbk")
    assert read(path, config, arrow=True) == read(path, config, arrow=False)
    assert kinds(path, config) == {pa.Table}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_export_fails_as_before(tmp_path, name):
    path = tmp_path / "c.csv"
    path.write_bytes(BROKEN[name].encode("utf-8"))
    errors = []
    for arrow in (True, False):
        with pytest.raises(SourceReadError) as info:
            read(path, reader(path), arrow)
        errors.append(str(info.value))
    assert errors[0] == errors[1]


def test_a_file_larger_than_the_limit_is_left_to_pandas(tmp_path, monkeypatch):
    path = tmp_path / "c.csv"
    path.write_bytes((HEADER + "1,Ann,Bern\n").encode("utf-8"))
    monkeypatch.setattr(arrow_csv, "MAX_BYTES", 10)
    assert kinds(path, reader(path)) == {pd.DataFrame}


def test_chunks_are_the_readers_chunk_size(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes((HEADER + "".join(f"{i},n{i},c\n" for i in range(7))).encode("utf-8"))
    chunks, _ = read(path, reader(path, chunk_size=3), arrow=True)
    assert [len(rows) for _, rows in chunks] == [3, 3, 1]


def test_an_extraction_lands_the_same_rows_and_digest_by_either_reader(tmp_path, monkeypatch):
    from datetime import date

    from custpipe.config import SourceConfig
    from custpipe.settings import Settings
    from custpipe.sources.extract import extract_dataset, read_landing_table, read_manifest

    config = SourceConfig.model_validate(
        {
            "name": "files",
            "customers": {
                "reader": {"kind": "csv", "path": "{sources}/c.csv", "chunk_size": 2},
                "id": "id",
                "fields": {"name": "name", "city": "city"},
            },
        }
    )
    landed = []
    for by_arrow in (True, False):
        s = Settings(tmp_path / "config", tmp_path / f"data{by_arrow}", tmp_path / "exp")
        s.sources_dir.mkdir(parents=True)
        content = HEADER + '1,"Smith, Ann",Bern\n2,,Chur\n3,Cy,""\n4,Dee,Zug\n5,Eve,Sion\n'
        (s.sources_dir / "c.csv").write_text(content, encoding="utf-8")
        if not by_arrow:
            monkeypatch.setattr(arrow_csv, "read_whole", lambda *args: None)
        result = extract_dataset(config, "customers", s, date(2026, 11, 27))
        manifest = read_manifest(result.path)
        landed.append((result.rows, manifest["content_sha256"], read_landing_table(result.path)))
    assert landed[0][:2] == landed[1][:2] and landed[0][2].equals(landed[1][2])
    assert landed[0][0] == 5

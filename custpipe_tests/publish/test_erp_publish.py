import pandas as pd
import pytest
import sqlalchemy as sa

from custpipe.publish.erp import PUBLISHED_COLUMNS, publish


def golden(rows: list[dict]) -> pd.DataFrame:
    base = dict.fromkeys(PUBLISHED_COLUMNS)
    return pd.DataFrame([base | {"status": "active"} | r for r in rows])


def target_rows(url: str) -> dict[str, dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM ZCUST_INBOUND")).mappings().all()
    engine.dispose()
    return {r["golden_id"]: dict(r) for r in rows}


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'erp.sqlite'}"


def test_insert_then_rerun_changes_nothing(url):
    g = golden([{"golden_id": "G1", "name": "A"}, {"golden_id": "G2", "name": "B"}])
    first = publish(g, url, "ZCUST_INBOUND", "run1")
    again = publish(g, url, "ZCUST_INBOUND", "run2")
    assert (first.inserted, first.updated, first.retired) == (2, 0, 0)
    assert (again.changed, again.unchanged) == (0, 2)
    assert {r["run_id"] for r in target_rows(url).values()} == {"run1"}


def test_update_and_retire_as_a_delta(url):
    publish(
        golden([{"golden_id": "G1", "name": "A"}, {"golden_id": "G2", "name": "B"}]),
        url,
        "ZCUST_INBOUND",
        "run1",
    )
    result = publish(
        golden([{"golden_id": "G1", "name": "A2"}, {"golden_id": "G3", "name": "C"}]),
        url,
        "ZCUST_INBOUND",
        "run2",
    )
    assert (result.inserted, result.updated, result.retired, result.unchanged) == (1, 1, 1, 0)
    rows = target_rows(url)
    assert rows["G1"]["name"] == "A2" and rows["G1"]["run_id"] == "run2"
    assert rows["G2"]["status"] == "retired"
    assert rows["G3"]["name"] == "C"
    # retiring is idempotent too
    assert (
        publish(
            golden([{"golden_id": "G1", "name": "A2"}, {"golden_id": "G3", "name": "C"}]),
            url,
            "ZCUST_INBOUND",
            "run3",
        ).changed
        == 0
    )


def test_dry_run_writes_nothing(url):
    result = publish(
        golden([{"golden_id": "G1", "name": "A"}]), url, "ZCUST_INBOUND", "r", dry_run=True
    )
    assert result.inserted == 1 and len(result.delta) == 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # not even the table was created
        assert not sa.inspect(conn).has_table("ZCUST_INBOUND")
    engine.dispose()
    publish(golden([{"golden_id": "G1", "name": "A"}]), url, "ZCUST_INBOUND", "r1")
    again = publish(
        golden([{"golden_id": "G1", "name": "B"}, {"golden_id": "G2"}]),
        url,
        "ZCUST_INBOUND",
        "r2",
        dry_run=True,
    )
    assert (again.inserted, again.updated) == (1, 1)
    assert target_rows(url)["G1"]["name"] == "A" and set(target_rows(url)) == {"G1"}


def test_an_error_mid_transaction_leaves_target_unchanged(url, monkeypatch):
    from custpipe.publish import erp

    publish(golden([{"golden_id": "G1", "name": "A"}]), url, "ZCUST_INBOUND", "run1")
    before = target_rows(url)
    calls = []

    def fail_after_first_batch():
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("network dropped mid-publish")

    monkeypatch.setattr(erp, "BATCH_ROWS", 1)
    monkeypatch.setattr(erp, "_test_pause", fail_after_first_batch)
    changed = golden([{"golden_id": "G1", "name": "changed"}, {"golden_id": "G9", "name": "x"}])
    with pytest.raises(ConnectionError):
        publish(changed, url, "ZCUST_INBOUND", "run2")
    assert len(calls) == 2  # the first batch really was written before the error
    assert target_rows(url) == before
    monkeypatch.undo()
    assert publish(changed, url, "ZCUST_INBOUND", "run3").changed == 2  # the next run completes


def test_duplicate_golden_ids_are_refused_before_writing(url):
    with pytest.raises(ValueError, match=r"golden_id must be present and unique \(0 missing, 1"):
        publish(golden([{"golden_id": "G1"}, {"golden_id": "G1"}]), url, "ZCUST_INBOUND", "r")
    assert not sa.inspect(sa.create_engine(url)).has_table("ZCUST_INBOUND")


def test_publish_log_and_delta(url, tmp_path):
    from custpipe.publish.erp import export_delta

    first = publish(
        golden([{"golden_id": "G1", "name": "A"}, {"golden_id": "G2", "name": "B"}]),
        url,
        "ZCUST_INBOUND",
        "run1",
    )
    second = publish(
        golden([{"golden_id": "G1", "name": "A2"}]),
        url,
        "ZCUST_INBOUND",
        "run2",
        merged_into={"G2": "G1"},
    )
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        log = conn.execute(
            sa.text(
                "SELECT run_id, inserted, updated, retired, unchanged, content_hash "
                "FROM ZCUST_INBOUND_LOG ORDER BY run_id"
            )
        ).all()
    engine.dispose()
    assert [tuple(r[:5]) for r in log] == [("run1", 2, 0, 0, 0), ("run2", 0, 1, 1, 0)]
    assert log[1][5] == second.content_hash != first.content_hash
    delta = second.delta.set_index("golden_id")
    assert delta.loc["G1", "change"] == "update" and delta.loc["G1", "changed_fields"] == "name"
    assert (delta.loc["G2", "change"], delta.loc["G2", "merged_into"]) == ("retire", "G1")
    paths = export_delta(second.delta, tmp_path, "run2")
    assert [p.name for p in paths] == ["delta.parquet", "delta.csv"]
    assert pd.read_parquet(paths[0])["change"].tolist() == ["update", "retire"]


def test_mass_retirement_is_refused_and_nothing_is_written(url):
    from custpipe.publish.erp import PublishRefused

    many = golden([{"golden_id": f"G{i}", "name": "x"} for i in range(20)])
    publish(many, url, "ZCUST_INBOUND", "run1")
    before = target_rows(url)
    with pytest.raises(
        PublishRefused, match=r"retire 5 of 20 active customers \(25.0% > the limit"
    ):
        publish(many.iloc[:15], url, "ZCUST_INBOUND", "run2", max_retire_share=0.1)
    assert target_rows(url) == before
    allowed = publish(many.iloc[:15], url, "ZCUST_INBOUND", "run3", max_retire_share=None)
    assert allowed.retired == 5


def test_a_merged_away_customer_points_at_its_successor(url):
    publish(golden([{"golden_id": "GA"}, {"golden_id": "GB"}]), url, "ZCUST_INBOUND", "run1")
    publish(golden([{"golden_id": "GB"}]), url, "ZCUST_INBOUND", "run2", merged_into={"GA": "GB"})
    rows = target_rows(url)
    assert (rows["GA"]["status"], rows["GA"]["merged_into"]) == ("retired", "GB")
    assert rows["GB"]["merged_into"] is None


def test_a_target_table_of_an_older_version_gets_the_new_columns(url):
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE ZCUST_INBOUND (golden_id VARCHAR(32) PRIMARY KEY, "
                + ", ".join(f"{c} VARCHAR(400)" for c in PUBLISHED_COLUMNS)
                + ", row_hash VARCHAR(64) NOT NULL, published_at DATETIME NOT NULL, "
                "run_id VARCHAR(64))"
            )
        )
    engine.dispose()
    assert publish(golden([{"golden_id": "G1"}]), url, "ZCUST_INBOUND", "r").inserted == 1
    assert "merged_into" in target_rows(url)["G1"]


def test_a_killed_publish_leaves_target_unchanged_and_the_next_run_completes(url):
    from custpipe_tests.publish.kill import count_rows, publish_and_kill

    publish(golden([{"golden_id": "G1", "name": "A"}]), url, "ZCUST_INBOUND", "run1")
    before = target_rows(url)
    publish_and_kill(url, "ZCUST_INBOUND")
    assert target_rows(url) == before
    assert count_rows(url, "ZCUST_INBOUND_LOG") == 1
    rows = golden([{"golden_id": "G1", "name": "A"}, {"golden_id": "G2", "name": "B"}])
    assert publish(rows, url, "ZCUST_INBOUND", "run2").inserted == 1


def test_an_unreachable_target_is_a_clear_failure(tmp_path):
    from custpipe.publish.erp import PublishTargetError

    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'erp.sqlite'}"
    with pytest.raises(PublishTargetError, match=r"failed: unable to open database file\. Nothing"):
        publish(golden([{"golden_id": "G1"}]), url, "ZCUST_INBOUND", "r")


def test_an_update_writes_only_the_fields_that_changed(url):
    from sqlalchemy import event

    first = golden([{"golden_id": "G1", "name": "A", "city": "Berlin", "phone": "+4930123"}])
    publish(first, url, "ZCUST_INBOUND", "run1")
    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    try:
        second = first.assign(city="München")
        result = publish(second, url, "ZCUST_INBOUND", "run2")
    finally:
        event.remove(sa.engine.Engine, "before_cursor_execute", capture)
    assert result.updated == 1
    assert result.delta["changed_fields"].tolist() == ["city"]
    (update,) = statements
    assigned = update.split(" SET ", 1)[1].split(" WHERE ", 1)[0]
    columns = sorted(part.split("=")[0].strip() for part in assigned.split(","))
    assert columns == ["city", "merged_into", "published_at", "row_hash", "run_id"]
    row = target_rows(url)["G1"]
    assert (row["city"], row["name"], row["phone"], row["run_id"]) == (
        "München",
        "A",
        "+4930123",
        "run2",
    )


def _create(url: str, ddl: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(ddl))
    engine.dispose()


def _inbound_ddl(types: dict[str, str], drop: tuple[str, ...] = ()) -> str:
    columns = [f"{c} {types.get(c, 'VARCHAR(400)')}" for c in PUBLISHED_COLUMNS if c not in drop]
    return (
        "CREATE TABLE ZCUST_INBOUND (golden_id VARCHAR(32) PRIMARY KEY, "
        + ", ".join(columns)
        + ", merged_into VARCHAR(32), row_hash VARCHAR(64) NOT NULL, "
        "published_at DATETIME NOT NULL, run_id VARCHAR(64))"
    )


@pytest.mark.parametrize(
    ("types", "drop", "expected"),
    [
        ({"name": "INTEGER"}, (), r"column name is INTEGER, expected VARCHAR\(400\)"),
        ({"city": "VARCHAR(10)"}, (), r"column city is VARCHAR\(10\), expected VARCHAR\(200\)"),
        ({}, ("street",), r"column street is missing \(expected VARCHAR\(400\)\)"),
    ],
)
def test_a_target_of_another_shape_is_a_clear_error_before_anything_is_written(
    url, types, drop, expected
):
    from custpipe.publish.erp import PublishTargetError

    _create(url, _inbound_ddl(types, drop))
    with pytest.raises(PublishTargetError, match=expected) as err:
        publish(golden([{"golden_id": "G1", "name": "Secret Customer"}]), url, "ZCUST_INBOUND", "r")
    message = str(err.value)
    assert "ZCUST_INBOUND" in message and "Nothing was written" in message
    assert "Secret Customer" not in message
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ZCUST_INBOUND")).scalar() == 0
        assert not sa.inspect(conn).has_table("ZCUST_INBOUND_LOG")
    engine.dispose()


def test_a_wider_or_text_column_is_accepted(url):
    _create(url, _inbound_ddl({"name": "TEXT", "city": "VARCHAR(1000)"}))
    assert publish(golden([{"golden_id": "G1", "name": "A"}]), url, "ZCUST_INBOUND", "r").inserted


@pytest.fixture
def postgres_url():
    """The test PostgreSQL server (skip when absent; fail in CI, see require_services)."""
    from custpipe_tests.conftest import require_services
    from custpipe_tests.integration.conftest import SERVERS

    url = SERVERS["postgresql"]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        if require_services():
            pytest.fail(f"PostgreSQL not reachable (CUSTPIPE_REQUIRE_SERVICES=1): {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    finally:
        engine.dispose()
    return url


def test_what_the_staged_suites_let_through_publishes_to_postgresql(postgres_url):
    """A value at the declared limit publishes; one the suites hold back (too long, NUL)
    would fail the publish, and fails it clearly, with nothing written."""
    import uuid

    from custpipe.publish.erp import PUBLISHED_LENGTHS, PublishTargetError
    from custpipe.quality.expectations import fits_published_length

    table = f"cp_test_{uuid.uuid4().hex[:10]}"
    limit = PUBLISHED_LENGTHS["name"]
    fits, too_long, nul = "ä" * limit, "ä" * (limit + 1), "Ber\x00lin"
    assert fits_published_length(fits, limit)
    assert not fits_published_length(too_long, limit) and not fits_published_length(nul, limit)
    try:
        result = publish(golden([{"golden_id": "G1", "name": fits}]), postgres_url, table, "r1")
        assert result.inserted == 1
        for bad in ({"name": too_long}, {"name": "A", "city": nul}):
            rows = golden([{"golden_id": "G1", "name": fits}, {"golden_id": "G2"} | bad])
            with pytest.raises(PublishTargetError, match=f"{table}.*Nothing was written") as err:
                publish(rows, postgres_url, table, "r2")
            assert too_long not in str(err.value) and "Ber" not in str(err.value)
        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(table)
            names = conn.execute(sa.text(f"SELECT name FROM {quoted}")).scalars().all()
        engine.dispose()
        assert names == [fits]
    finally:
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            for name in (table, f"{table}_LOG"):
                sa.Table(name, sa.MetaData()).drop(conn, checkfirst=True)
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://custpipe:Pl4nted@Secret:pw@127.0.0.1:1/erp",  # '@' unescaped
        "postgresql+psycopg://custpipe:Pl4nted%40Secret%3Apw@127.0.0.1:1/erp",  # refused
    ],
)
def test_a_refused_connection_never_shows_the_password(url):
    from custpipe.publish.erp import PublishTargetError

    with pytest.raises(PublishTargetError, match="Nothing was written") as err:
        publish(golden([{"golden_id": "G1"}]), url, "ZCUST_INBOUND", "r")
    for piece in ("Pl4nted", "Secret"):
        assert piece not in str(err.value)


def test_an_unescaped_at_in_the_publish_url_is_refused_before_connecting_without_the_driver():
    """The check the sources run (check_url) runs before create_engine, and no driver
    exception (which names the password as host) is chained to the error."""
    import traceback

    from custpipe.publish.erp import PublishTargetError

    url = "postgresql+psycopg://custpipe:Secret99@Pl4nted@127.0.0.1:1/erp"
    with pytest.raises(PublishTargetError, match="unescaped '@'") as err:
        publish(golden([{"golden_id": "G1"}]), url, "ZCUST_INBOUND", "r")
    assert "%40" in str(err.value) and "Nothing was written" in str(err.value)
    shown = "".join(traceback.format_exception(err.value))
    for piece in ("Secret99", "Pl4nted"):
        assert piece not in shown


def test_a_driver_error_is_not_chained_to_the_publish_error(url, tmp_path):
    """A driver's exception (its text may echo the URL) never travels as __cause__/__context__."""
    import traceback

    from custpipe.publish.erp import PublishTargetError

    bad = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'erp.sqlite'}"
    with pytest.raises(PublishTargetError, match="unable to open database file") as err:
        publish(golden([{"golden_id": "G1"}]), bad, "ZCUST_INBOUND", "r")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    shown = "".join(traceback.format_exception(err.value))
    assert "OperationalError" not in shown and "sqlite3" not in shown


@pytest.mark.parametrize("bypass_url_check", [False, True])
def test_the_event_log_error_of_a_publish_url_with_an_unescaped_at_holds_no_password(
    monkeypatch, bypass_url_check
):
    """What Dagster stores in the event log for a failed step (the error, its cause and
    context chain) holds no piece of the password: refused by the URL check, and, should a
    URL get past it, the driver's message ("failed to resolve host 'Pl4nted@127.0.0.1'") is
    redacted and the driver's exception is not chained."""
    import sys

    from dagster._utils.error import serializable_error_info_from_exc_info
    from dagster_shared.serdes import serialize_value

    from custpipe.publish.erp import PublishTargetError
    from custpipe.sources import sql_guard

    if bypass_url_check:
        monkeypatch.setattr(sql_guard, "check_url", lambda url: None)
    url = "postgresql+psycopg://postgres:Secret99@Pl4nted@127.0.0.1:5432/test"
    try:
        publish(golden([{"golden_id": "G1"}]), url, "ZCUST_INBOUND", "r")
    except PublishTargetError:
        logged = serialize_value(serializable_error_info_from_exc_info(sys.exc_info()))
    else:  # pragma: no cover - the publish must fail
        pytest.fail("the publish did not fail")
    assert "Nothing was written" in logged
    for piece in ("Secret99", "Pl4nted"):
        assert piece not in logged

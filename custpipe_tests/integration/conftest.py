"""Real database servers for integration tests: PostgreSQL and MariaDB on the machine.

A server that cannot be reached skips its tests on a laptop; in CI
(`CUSTPIPE_REQUIRE_SERVICES=1`, set by .ci/run) it fails them instead.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from custpipe_tests.conftest import require_server

SERVERS = {
    "postgresql": os.environ.get(
        "CUSTPIPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "CUSTPIPE_TEST_MARIADB_URL", "mysql+pymysql://root:@127.0.0.1:3306/test?charset=utf8mb4"
    ),
}


@pytest.fixture(params=sorted(SERVERS))
def server_url(request) -> str:
    """The URL of a reachable server (skip, or fail in CI, when it is not)."""
    url = SERVERS[request.param]
    require_server(url, request.param)
    return url


@pytest.fixture
def table_name(server_url):
    """A fresh table name, dropped after the test."""
    name = f"cp_test_{uuid.uuid4().hex[:10]}"
    yield name
    engine = sa.create_engine(server_url)
    with engine.begin() as conn:
        for table in (name, f"{name}_LOG"):  # quoted as created (case matters on PostgreSQL)
            sa.Table(table, sa.MetaData()).drop(conn, checkfirst=True)
    engine.dispose()

"""Spark tests: they need pyspark (custpipe[spark]) and Java 17+. Without them they skip,
except where CUSTPIPE_REQUIRE_SPARK=1 (CI, .ci/run) turns the skip into a failure."""

from __future__ import annotations

import os

import pytest


def require_spark() -> None:
    """Skip (or, under CUSTPIPE_REQUIRE_SPARK=1, fail) when Spark cannot run here."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        problem = "pyspark is not installed (pip install 'custpipe[spark]'; make test does)"
    else:
        from custpipe.spark.session import java_problem

        problem = java_problem()
    if problem is None:
        return
    if os.environ.get("CUSTPIPE_REQUIRE_SPARK") == "1":
        pytest.fail(problem + " (CUSTPIPE_REQUIRE_SPARK=1: the Spark tests must run here)")
    pytest.skip(problem)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local Spark session for the tests (custpipe's own settings)."""
    require_spark()
    from custpipe.config import SparkConfig
    from custpipe.spark.session import spark_session

    session = spark_session(SparkConfig(), tmp_path_factory.mktemp("spark"))
    yield session
    session.stop()

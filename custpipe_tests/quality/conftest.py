"""Shared fixtures for the quality tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from custpipe_tests.quality.helpers import EXPECTATIONS_DIR, make_staged_frame  # noqa: E402


@pytest.fixture
def expectations_dir():
    """The repository's reviewed suites."""
    return EXPECTATIONS_DIR


@pytest.fixture
def gx_dir(tmp_path):
    """A fresh, writable GX working directory."""
    return tmp_path / "gx"


@pytest.fixture
def staged_frame():
    """A clean 50-row staged frame (see helpers.make_staged_frame)."""
    return make_staged_frame(50)

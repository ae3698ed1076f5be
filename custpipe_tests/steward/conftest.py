"""Workbench fixtures: users of every role with cheap password hashes, signed-in clients."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from custpipe.settings import Settings

PASSWORD = "correct horse battery staple"
#: user name per role, present in every test deployment's users file
USERS = {"viewer": "vic", "steward": "ann", "admin": "ada"}
# verify() reads the cost from the hash, so cheap test hashes keep sign-in fast
_FAST = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
# one hash for all: writing the users file again must not end the sessions of other clients
_HASH = _FAST.hash(PASSWORD)


def add_users(settings: Settings) -> None:
    """Write one user per role (password PASSWORD) to the deployment's users file."""
    from custpipe.steward.config import load_steward_config, save_user, users_path

    path = users_path(settings, load_steward_config(settings))
    for role, name in USERS.items():
        save_user(path, name, role, _HASH)


def client(settings: Settings, role: str | None = None, peer: str = "testclient", **app_options):
    """A TestClient of the workbench over `settings`, signed in as `role` (None: anonymous);
    `peer` is the client address the application sees."""
    from starlette.testclient import TestClient

    from custpipe.steward.app import build_app

    add_users(settings)
    test_client = TestClient(
        build_app(settings, **app_options), follow_redirects=False, client=(peer, 50000)
    )
    if role is not None:
        sign_in(test_client, USERS[role])
    return test_client


def csrf_of(test_client) -> str:
    """The session's CSRF token, read from the login form or any page."""
    import re

    page = test_client.get("/login")
    if page.status_code == 303:  # signed in already: any page carries the token
        page = test_client.get("/golden")
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in(test_client, name: str, password: str = PASSWORD):
    """POST the login form as `name`; asserts it succeeded."""
    response = test_client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": csrf_of(test_client)},
    )
    assert response.status_code == 303, response.text
    return response


@pytest.fixture
def steward_settings(tmp_path) -> Settings:
    """Settings of an empty deployment (no warehouse yet) in a temporary folder."""
    from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR

    return Settings(
        config_dir=DEFAULT_CONFIG_DIR,
        data_dir=tmp_path / "data",
        expectations_dir=DEFAULT_EXPECTATIONS_DIR,
    )

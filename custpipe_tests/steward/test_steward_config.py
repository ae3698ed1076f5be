"""steward.yaml and the users file: defaults, clear errors, hashes never in plain text."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from custpipe.config import ConfigError
from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings
from custpipe.steward import auth
from custpipe.steward.config import (
    SECRET_ENV,
    StewardConfig,
    load_steward_config,
    load_users,
    role_at_least,
    save_user,
    session_secret,
)


def test_the_shipped_steward_yaml_holds_the_defaults(steward_settings):
    assert load_steward_config(steward_settings) == StewardConfig()


def test_a_bad_key_or_proxy_names_the_file(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    settings = Settings(config, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    (config / "steward.yaml").write_text("auth: password\nsesion_hours: 3\n")
    with pytest.raises(ConfigError, match=r"(?s)steward\.yaml.*sesion_hours"):
        load_steward_config(settings)
    (config / "steward.yaml").write_text("trusted_proxies: [not-an-address]\n")
    with pytest.raises(ConfigError, match="not-an-address"):
        load_steward_config(settings)
    (config / "steward.yaml").unlink()
    assert load_steward_config(settings) == StewardConfig()  # absent: defaults


def test_users_are_saved_with_argon2_hashes_owner_only(tmp_path):
    path = tmp_path / "steward" / "users.yaml"
    password = "a long enough password"
    save_user(path, "ann", "steward", auth.hash_password(password))
    save_user(path, "vic", "viewer", None)
    text = path.read_text()
    assert password not in text and "$argon2id$" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = load_users(path)
    assert users["ann"].role == "steward" and users["vic"].password_hash is None
    assert auth.verify_password(users["ann"], password)
    assert not auth.verify_password(users["ann"], "wrong")
    assert not auth.verify_password(users["vic"], "")  # a proxy-only user has no password
    assert not auth.verify_password(None, password)
    with pytest.raises(ValueError, match="role"):
        save_user(path, "eve", "root", None)
    with pytest.raises(ValueError, match="12 characters"):
        auth.hash_password("short")


def test_roles_are_ordered():
    assert role_at_least("admin", "steward") and role_at_least("steward", "viewer")
    assert not role_at_least("viewer", "steward")


def test_the_session_secret_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "s" * 40)
    assert session_secret() == ("s" * 40, True)
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(ConfigError, match="32"):
        session_secret()
    monkeypatch.delenv(SECRET_ENV)
    first, from_env = session_secret()
    assert not from_env and first != session_secret()[0]


def test_a_broken_users_file_names_itself(tmp_path):
    path = Path(tmp_path) / "users.yaml"
    path.write_text("users:\n  ann: {role: superuser}\n")
    with pytest.raises(ConfigError, match="users.yaml"):
        load_users(path)

"""The workbench's configuration: `steward.yaml` in the config folder, users in their own file.

`steward.yaml` says how people sign in (passwords checked here, or a reverse proxy's
`X-Remote-User` header), how long a session lasts and how many failed logins are allowed.
The users file (`users_file`, by default `{data}/steward/users.yaml`, written by
`custpipe steward add-user`) maps each user name to a role and an argon2 password hash.
The session-signing secret comes from the environment only (`CUSTPIPE_STEWARD_SECRET`).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from custpipe.config import ConfigError
from custpipe.settings import Settings

ROLES = ("viewer", "steward", "admin")
Role = Literal["viewer", "steward", "admin"]
SECRET_ENV = "CUSTPIPE_STEWARD_SECRET"


def role_at_least(role: str, needed: str) -> bool:
    """True when `role` may do what `needed` may (viewer < steward < admin)."""
    return ROLES.index(role) >= ROLES.index(needed)


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role
    password_hash: str | None = Field(
        default=None, description="argon2 hash (custpipe steward add-user); none: proxy only"
    )


class StewardConfig(BaseModel):
    """`steward.yaml`: how the workbench signs people in; every key has a safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    auth: Literal["password", "remote_user"] = "password"
    remote_user_header: str = "X-Remote-User"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    users_file: str = "{data}/steward/users.yaml"
    session_hours: float = Field(default=8, gt=0, le=24 * 7)
    login_attempts: int = Field(default=5, ge=1, description="failures allowed per window")
    login_window_minutes: int = Field(default=15, ge=1)
    secure_cookies: bool | None = Field(
        default=None, description="Secure flag on the session cookie; none: unless loopback"
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value


def load_steward_config(settings: Settings) -> StewardConfig:
    """`<config>/steward.yaml` validated (defaults when the file is absent)."""
    path = settings.config_dir / "steward.yaml"
    if not path.exists():
        return StewardConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return StewardConfig.model_validate(raw)
    except (yaml.YAMLError, ValidationError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def users_path(settings: Settings, cfg: StewardConfig) -> Path:
    """Where the users and their password hashes are kept."""
    return Path(settings.expand(cfg.users_file))


def load_users(path: Path) -> dict[str, User]:
    """The configured users (empty when the file does not exist yet)."""
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        users = raw.get("users") or {}
        return {str(name): User.model_validate(entry) for name, entry in users.items()}
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def save_user(path: Path, name: str, role: str, password_hash: str | None) -> None:
    """Add or replace one user in the users file (written owner-only)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError("a user name is letters, digits, '.', '-' or '_'")
    users = {n: u.model_dump(exclude_none=True) for n, u in load_users(path).items()}
    users[name] = User(role=role, password_hash=password_hash).model_dump(exclude_none=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"users": users}, sort_keys=True), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def session_secret() -> tuple[str, bool]:
    """(secret, from_environment): the session-signing key; a random one lasts one process."""
    value = os.environ.get(SECRET_ENV, "")
    if value:
        if len(value) < 32:
            raise ConfigError(f"{SECRET_ENV} must be at least 32 characters")
        return value, True
    return secrets.token_urlsafe(48), False

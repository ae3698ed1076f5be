"""`custpipe steward`: serve the workbench, add users, hash passwords."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `steward` command and its subcommands."""
    steward = sub.add_parser("steward", help="the stewards' workbench (web pages)")
    actions = steward.add_subparsers(dest="steward_command")
    steward.set_defaults(func=cmd_serve, host="127.0.0.1", port=8080)
    serve = actions.add_parser("serve", help="serve the workbench (the default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=cmd_serve)
    add = actions.add_parser("add-user", help="add or change a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["viewer", "steward", "admin"])
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.add_argument(
        "--no-password", action="store_true", help="proxy sign-in only (auth: remote_user)"
    )
    add.set_defaults(func=cmd_add_user)
    hashed = actions.add_parser("hash-password", help="print an argon2 hash of a password")
    hashed.add_argument("--password-stdin", action="store_true")
    hashed.set_defaults(func=cmd_hash_password)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password (12 characters or more): ")
    if first != getpass.getpass("again: "):
        raise ValueError("the passwords differ")
    return first


def cmd_add_user(args: argparse.Namespace) -> int:
    """Write a user with a role (and an argon2 password hash) to the users file."""
    from custpipe.settings import Settings
    from custpipe.steward.auth import hash_password
    from custpipe.steward.config import load_steward_config, save_user, users_path

    settings = Settings.from_env()
    path = users_path(settings, load_steward_config(settings))
    hashed = None if args.no_password else hash_password(_read_password(args.password_stdin))
    save_user(path, args.name, args.role, hashed)
    print(f"user {args.name} ({args.role}) written to {path}")
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Print an argon2 hash (for a users file kept elsewhere, e.g. in a secrets store)."""
    from custpipe.steward.auth import hash_password

    print(hash_password(_read_password(args.password_stdin)))
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the workbench with uvicorn (loopback unless --host says otherwise)."""
    import uvicorn

    from custpipe.settings import Settings
    from custpipe.steward.app import build_app
    from custpipe.steward.config import (
        SECRET_ENV,
        load_steward_config,
        load_users,
        session_secret,
        users_path,
    )

    settings = Settings.from_env()
    cfg = load_steward_config(settings)
    users = users_path(settings, cfg)
    if not load_users(users):
        raise ValueError(
            f"no users in {users}: add one with `custpipe steward add-user NAME --role steward`"
            " (roles: viewer, steward, admin)"
        )
    if not session_secret()[1]:
        print(f"note: {SECRET_ENV} is not set: sessions end when the workbench restarts")
    if not _loopback(args.host) and cfg.secure_cookies is not True:
        print(
            "note: serving beyond loopback: put it behind HTTPS (a reverse proxy) and set "
            "secure_cookies: true in steward.yaml"
        )
    print(f"the stewards' workbench: http://{args.host}:{args.port}/  (Ctrl-C stops it)")
    uvicorn.run(
        build_app(settings, cfg, https=bool(cfg.secure_cookies)),
        host=args.host,
        port=args.port,
        log_level="warning",
        proxy_headers=False,
    )
    return 0

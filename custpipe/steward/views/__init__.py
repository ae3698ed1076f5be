"""The workbench's pages, one module per area; `routes()` collects them."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """Every page and form of the workbench (login and logout are in `auth`)."""
    from custpipe.steward.views import audit, golden, inbox, quarantine, rules

    return [*inbox.routes, *golden.routes, *quarantine.routes, *rules.routes, *audit.routes]

"""The alert of a night that did not go as planned, and where it goes (a file, a webhook).

A night is **blocked** when a blocking check stopped it (bad data: nothing of that night was
published) and **failed** when a step raised an error (a defect, an outage, a broken export);
**held** is a night that published while a source's new data was held back. The alert says
which, names the rule and its counts (never a customer value), whether the ERP got data
and where the run is in the Dagster UI. It is appended to `<data>/alerts/alerts.jsonl` and,
when a webhook is configured, POSTed to it as JSON; a webhook that fails is logged and the
file alert stays.

No Dagster import here.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from custpipe.gates import rule_text
from custpipe.secrets import redact

Kind = Literal["blocked", "failed", "held"]
BLOCKED: Kind = "blocked"
FAILED: Kind = "failed"
HELD: Kind = "held"

DAGSTER_URL_ENV = "CUSTPIPE_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
WEBHOOK_URL_ENV = "CUSTPIPE_ALERT_WEBHOOK"
DEFAULT_WEBHOOK_TIMEOUT = 10.0

# run tags: what kind of night it was, and what blocked it (rules and counts)
NIGHT_TAG = "custpipe/night"
BLOCKED_BY_TAG = "custpipe/blocked_by"
MAX_TAG_CHARS = 1000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    """One failed blocking check: its asset, check, failed rules and counts (no values)."""

    asset: str  # "quality/crm"
    check: str  # "suite_passes"
    rules: tuple[dict, ...] = ()  # {"rule", "evaluated", "failed"[, "note"]}
    counts: dict[str, int | float] = field(default_factory=dict)
    source: str | None = None  # the source system, for a check that runs per source

    def text(self) -> str:
        """'quality/crm: suite_passes: name_mostly_present (40 of 150 failed)'."""
        rules = ", ".join(rule_text(r) for r in self.rules) or "failed"
        return f"{self.asset}: {self.check}: {rules}"

    def as_dict(self) -> dict:
        """The block as JSON-able values (what the alert and the check's metadata carry)."""
        return {
            "source": self.source,
            "asset": self.asset,
            "check": self.check,
            "rules": [dict(r) for r in self.rules],
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Block:
        """The block of `as_dict`'s output."""
        return cls(
            str(data["asset"]),
            str(data["check"]),
            tuple(dict(r) for r in data.get("rules", ())),
            dict(data.get("counts", {})),
            data.get("source"),
        )


@dataclass(frozen=True)
class Night:
    """How a run ended, as on-call needs it: blocked or failed, by what, and was it published."""

    kind: Kind
    blocks: tuple[Block, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)  # step key -> error headline
    published: bool = False

    def blocked_by(self) -> str:
        """Every block's text, '; '-joined ('' when nothing blocked)."""
        return "; ".join(b.text() for b in self.blocks)

    def headline(self) -> str:
        """One line: 'BLOCKED by quality/crm: suite_passes: ... - the ERP did not get ...'."""
        erp = (
            "the ERP got tonight's data" if self.published else "the ERP did NOT get tonight's data"
        )
        if self.kind == BLOCKED:
            return f"BLOCKED by {self.blocked_by()} - {erp}"
        if self.kind == HELD:
            return f"HELD: {self.blocked_by()} - {erp}"
        steps = ", ".join(sorted(self.errors)) or "the run"
        text = f"FAILED (error in {steps})"
        if self.blocks:
            text += f"; also blocked by {self.blocked_by()}"
        return f"{text} - {erp}"

    def tags(self) -> dict[str, str]:
        """The run tags that say what kind of night it was and what blocked it."""
        tags = {NIGHT_TAG: self.kind}
        if self.blocks:
            tags[BLOCKED_BY_TAG] = clip(self.blocked_by(), MAX_TAG_CHARS)
        return tags


def classify(blocks: list[Block], failed_steps: dict[str, str], blocked_steps: set[str]) -> Kind:
    """'failed' when a step failed for another reason than a failed blocking check, or the run
    failed with no step failed (an error outside the steps); else 'blocked'."""
    errors = set(failed_steps) - blocked_steps
    if errors or not blocks:
        return FAILED
    return BLOCKED


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(text: str | None) -> str:
    """A message as one line of at most 500 characters, passwords of URLs masked."""
    return redact(clip(" ".join((text or "").split()), 500))


def run_url(run_id: str, configured: str | None = None) -> str:
    """The run's page in the Dagster UI, `<base>/runs/<run_id>`: base from CUSTPIPE_DAGSTER_URL,
    else `configured` (pipeline.yaml alerts.dagster_url), else http://127.0.0.1:3000."""
    base = os.environ.get(DAGSTER_URL_ENV) or configured or DEFAULT_DAGSTER_URL
    return f"{base.rstrip('/')}/runs/{run_id}"


def alert_record(
    night: Night,
    run_id: str,
    job: str,
    message: str,
    *,
    url: str,
    business_date: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """What an alert says (JSON-able; counts and rule names only, never customer values)."""
    return {
        "at": (at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "kind": night.kind,
        "headline": night.headline(),
        "run_id": run_id,
        "job": job,
        "business_date": business_date,
        "url": url,
        "published": night.published,
        "blocked_by": [b.as_dict() for b in night.blocks],
        "failed_steps": sorted(night.errors),
        "errors": dict(night.errors),
        "message": headline(message),
    }


@dataclass(frozen=True)
class Delivery:
    """Where an alert went: the file, and the webhook's outcome (None: none configured)."""

    file: Path
    webhook: str | None = None  # the webhook's scheme and host (its path may hold a token)
    webhook_error: str | None = None

    @property
    def webhook_ok(self) -> bool:
        """True when a webhook is configured and accepted the alert."""
        return self.webhook is not None and self.webhook_error is None


def append_alert(path: Path, record: dict) -> Path:
    """Append `record` as one JSON line to the alert file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return path


def post_alert(url: str, record: dict, timeout: float) -> None:
    """POST `record` as JSON to `url`; raises OSError (URLError, HTTPError, timeout)
    when the webhook cannot be reached or does not answer 2xx."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"the webhook URL must be http:// or https:// ({webhook_host(url)})")
    body = json.dumps(record).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/s)
        if not 200 <= response.status < 300:
            raise OSError(f"HTTP {response.status}")


def deliver(
    record: dict, path: Path, webhook_url: str | None, timeout: float = DEFAULT_WEBHOOK_TIMEOUT
) -> Delivery:
    """Write the alert to the file first (it is never lost), then POST it to the webhook if
    one is configured; a webhook failure is logged and reported, not raised."""
    append_alert(path, record)
    if not webhook_url:
        return Delivery(path)
    shown = webhook_host(webhook_url)
    try:
        post_alert(webhook_url, record, timeout)
    except (OSError, ValueError) as exc:  # URLError, HTTPError and timeouts are OSErrors
        error = redact(f"{type(exc).__name__}: {exc}".replace(webhook_url, shown), webhook_url)
        log.error("alert webhook %s failed (%s); the alert is in %s", shown, error, path)
        return Delivery(path, shown, error)
    return Delivery(path, shown)


def webhook_host(url: str) -> str:
    """What may be shown of a webhook URL: its scheme and host (its path often holds a token)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or '?'}://{host}{port}/…"

"""Webhook notifications: the payload for an incident event, and delivery of the outbox with retries.

A payload is generic JSON (``event``, ``text``, ``incident``) or Slack-compatible (only ``text``). Delivery POSTs
each due outbox row with an ``Idempotency-Key`` header; a 2xx marks it delivered, anything else (a refused
connection, a timeout, a 5xx) schedules the next attempt after an exponential backoff capped at ``max_delay_s``,
forever: a notification is never dropped while its receiver is down, and once delivered it is never sent again.
This module knows HTTP and the outbox's rows, not rules.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from ctxops.store import Store
from ctxops.store.outbox import due, mark_delivered, mark_failed

FORMATS = ("json", "slack")


@dataclass(frozen=True, slots=True)
class Webhook:
    """A receiver of incident notifications."""

    url: str
    format: str = "json"  # json | slack

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"webhook url must be http(s)://host/path, got {self.url!r}")
        if self.format not in FORMATS:
            raise ValueError(f"webhook format must be json or slack, got {self.format!r}")

    def payload(self, event: str, incident: dict[str, Any]) -> dict[str, Any]:
        """The body for ``event`` (opened | resolved) of ``incident`` (dedup_key, rule, title, details)."""
        text = f"[ctxops] incident {event}: {incident['title']}"
        if self.format == "slack":
            return {"text": text}
        return {"event": event, "text": text, "incident": incident}


def notifications(
    webhooks: list[Webhook], event: str, incident: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(url, payload) for every webhook, as the store's incident functions take them."""
    return [(w.url, w.payload(event, incident)) for w in webhooks]


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """How the outbox is delivered."""

    timeout_s: float = 5.0  # per POST
    base_delay_s: float = 1.0  # wait after the first failure; doubles with each further one
    max_delay_s: float = 300.0  # the longest wait between attempts

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0 and 0 < self.base_delay_s <= self.max_delay_s):
            raise ValueError("timeout_s must be > 0 and 0 < base_delay_s <= max_delay_s")

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based)."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts - 1))


def deliver_due(store: Store, config: DeliveryConfig, now: float | None = None) -> tuple[int, int]:
    """POST every due notification once; returns (delivered, failed)."""
    now = time.time() if now is None else now
    delivered = failed = 0
    with httpx.Client(timeout=config.timeout_s) as client:
        for row in due(store, now):
            error = _post(client, row)
            if error is None:
                mark_delivered(store, row["id"], time.time())
                delivered += 1
            else:
                mark_failed(store, row["id"], error, now + config.delay(row["attempts"] + 1))
                failed += 1
    return delivered, failed


def _post(client: httpx.Client, row: dict[str, Any]) -> str | None:
    """None on a 2xx, else what went wrong."""
    try:
        reply = client.post(
            row["url"], json=row["payload"], headers={"Idempotency-Key": row["idempotency_key"]}
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if reply.is_success else f"HTTP {reply.status_code}"

"""Incidents and their notifications on a real store and a real receiver on loopback: deduplicated incidents, a
receiver that is down loses nothing, a delivered notification is never sent again."""

from __future__ import annotations

import socket

import pytest

from ctxops.monitor.notify import DeliveryConfig, Webhook, deliver_due, notifications
from ctxops.store import StoreError, open_store
from ctxops.store.incidents import list_incidents, open_incident, set_state
from ctxops.store.outbox import pending_count
from webhook_receiver import Receiver

FAST = DeliveryConfig(timeout_s=2.0, base_delay_s=1.0, max_delay_s=8.0)
INCIDENT = {"dedup_key": "drift:ttft_s:m", "rule": "drift", "title": "ttft_s drifted for m", "details": {}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _open(store, hooks, now, key="drift:ttft_s:m"):
    incident = {**INCIDENT, "dedup_key": key}
    return open_incident(store, key, "drift", incident["title"], {"p": 1e-9}, now,
                         notifications(hooks, "opened", incident))  # fmt: skip


def test_a_receiver_that_is_down_loses_nothing_and_gets_each_alert_once(db_url):
    store = open_store(db_url)
    port = _free_port()
    json_hook, slack_hook = (
        Webhook(f"http://127.0.0.1:{port}/hook"),
        Webhook(f"http://127.0.0.1:{port}/hook2", "slack"),
    )
    first, created = _open(store, [json_hook, slack_hook], now=1000.0)
    again, created_again = _open(store, [json_hook, slack_hook], now=1010.0)  # still live: same incident
    assert created and not created_again and again == first
    assert deliver_due(store, FAST, now=1000.0) == (0, 2)  # receiver down: both fail, both kept
    assert deliver_due(store, FAST, now=1000.5) == (0, 0)  # backing off
    assert deliver_due(store, FAST, now=1001.0) == (0, 2)  # second failure: next try 2 s later
    receiver = Receiver(port).start()
    try:
        assert deliver_due(store, FAST, now=1002.0) == (0, 0)
        assert deliver_due(store, FAST, now=1003.0) == (2, 0)
        assert deliver_due(store, FAST, now=5000.0) == (0, 0)  # never sent twice
    finally:
        receiver.stop()
    bodies = {headers["Idempotency-Key"]: body for headers, body in receiver.received}
    assert len(receiver.received) == 2 and pending_count(store) == 0
    generic = bodies[f"{first}:opened:{json_hook.url}"]
    assert generic["event"] == "opened" and generic["incident"]["dedup_key"] == "drift:ttft_s:m"
    assert bodies[f"{first}:opened:{slack_hook.url}"] == {"text": "[ctxops] incident opened: ttft_s drifted for m",
                                                          "incident_id": first}  # fmt: skip
    store.close()


def test_lifecycle_ack_resolve_and_a_new_incident_after_resolution(tmp_path):
    store = open_store(tmp_path / "s.db")
    receiver = Receiver(fail_first=1).start()  # answers 503 once, then 200
    hook = Webhook(receiver.url)
    try:
        first, _ = _open(store, [hook], now=1.0)
        assert set_state(store, first, "acknowledged", now=2.0)["state"] == "acknowledged"
        assert _open(store, [hook], now=3.0) == (first, False)  # acknowledged is still live
        resolved = set_state(
            store, first, "resolved", now=4.0, notify=notifications([hook], "resolved", INCIDENT)
        )
        assert resolved["resolved_at"] == 4.0
        second, created = _open(store, [hook], now=5.0)  # the condition came back: a new incident
        assert created and second != first
        assert [i["id"] for i in list_incidents(store, live_only=True)] == [second]
        assert deliver_due(store, FAST, now=10.0) == (2, 1)
        assert deliver_due(store, FAST, now=11.0) == (1, 0)
        assert [body["event"] for _, body in receiver.received] == ["resolved", "opened", "opened"]
    finally:
        receiver.stop()
    with pytest.raises(StoreError, match="already resolved"):
        set_state(store, first, "resolved", now=6.0)
    with pytest.raises(StoreError, match="no incident 999"):
        set_state(store, 999, "acknowledged", now=6.0)
    store.close()


def test_bad_webhooks_are_refused():
    with pytest.raises(ValueError, match="http"):
        Webhook("ftp://x")
    with pytest.raises(ValueError, match="json or slack"):
        Webhook("http://x/h", "teams")

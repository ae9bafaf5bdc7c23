"""`ctxops monitor run` as a real process: an induced shift opens exactly one incident, its notification waits for a
receiver that is down and arrives once, SIGTERM stops it cleanly, and a restart resumes without repeating."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from ctxops.monitor.run_config import load_monitor_config
from ctxops.store import open_store
from ctxops.store.incidents import list_incidents
from ctxops.store.outbox import pending_count
from ctxops.store.requests import insert_requests
from monitor_data import traffic
from webhook_receiver import Receiver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _start(config, db) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ctxops", "monitor", "run", "--config", str(config), "--db", db],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    return output


def test_an_induced_shift_opens_one_incident_notified_once_across_a_restart(tmp_path):
    db, now = str(tmp_path / "s.db"), time.time()
    store = open_store(db)
    insert_requests(store, traffic(600, now - 3 * 3600, 2 * 3600, seed=1))
    insert_requests(store, traffic(600, now - 3600, 3590, seed=2, ttft_median=0.6))  # TTFT doubled last hour
    port = _free_port()
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
deliver_every = "1s"
[drift]
every = "2s"
reference = "3h..1h"
current = "1h.."
[error_spike]
every = "2s"
window = "1h"
[[webhook]]
url = "http://127.0.0.1:{port}/hook"
""")
    proc = _start(config, db)
    try:
        _wait(lambda: len(list_incidents(store)) == 1)
        time.sleep(2.5)  # more turns of every check: still one incident, its notification still queued
        assert len(list_incidents(store)) == 1 and pending_count(store) == 1
        receiver = Receiver(port).start()  # the receiver comes up
        _wait(lambda: len(receiver.received) == 1)
    finally:
        output = _stop(proc)
    assert "stopped" in output
    incident = list_incidents(store)[0]
    assert incident["rule"] == "drift" and "ttft_s" in incident["title"] and incident["state"] == "open"
    headers, body = receiver.received[0]
    assert body["event"] == "opened" and headers["Idempotency-Key"].startswith(f"{incident['id']}:opened")

    restarted = time.time()
    again = _start(config, db)  # restart: the condition persists, nothing new is opened or sent
    try:  # wait for the restarted monitor's drift check to refresh the live incident, then one turn more
        _wait(lambda: list_incidents(store)[0]["updated_at"] > restarted)
        time.sleep(2.5)
    finally:
        _stop(again)
        receiver.stop()
    assert len(list_incidents(store)) == 1 and len(receiver.received) == 1 and pending_count(store) == 0
    store.close()


@pytest.mark.parametrize(
    "text, message",
    [("", "nothing to run"), ("[drift]\nevery = 5\n", "every"), ("[drift]\nreference = 'x'\n", "START..END"),
     ("[drift]\ncolor = 1\n", "unknown field 'color'"), ("[slo]\nfile = 'missing.toml'\n", "cannot read"),
     ("[drift]\n[[webhook]]\nurl = 'ftp://x'\n", "webhook url")],
)  # fmt: skip
def test_bad_monitor_configs_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "monitor.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_monitor_config(path)


def test_cli_lifecycle(tmp_path):
    from click.testing import CliRunner

    from ctxops.cli.main import cli
    from ctxops.store.incidents import open_incident

    db = str(tmp_path / "s.db")
    store = open_store(db)
    incident_id, _ = open_incident(store, "k", "drift", "ttft_s drifted", {}, time.time())
    store.close()
    runner = CliRunner(env={**os.environ, "CTXOPS_DB": db})
    assert f"#{incident_id}  open" in runner.invoke(cli, ["monitor", "incidents", "--open"]).output
    assert "acknowledged" in runner.invoke(cli, ["monitor", "ack", str(incident_id)]).output
    assert "resolved" in runner.invoke(cli, ["monitor", "resolve", str(incident_id)]).output
    assert runner.invoke(cli, ["monitor", "incidents", "--open"]).output.strip() == "no incidents open"
    again = runner.invoke(cli, ["monitor", "resolve", str(incident_id)])
    assert again.exit_code == 1 and "already resolved" in again.output

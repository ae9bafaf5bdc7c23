"""The whole loop with real processes: `ctxops serve` takes traffic into its request log while `ctxops monitor run`
watches it; prompts that suddenly grow open exactly one incident, and the webhook receiver hears of it once."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time

import openai
import pytest

from ctxops.store import open_store
from ctxops.store.incidents import list_incidents
from serve.serve_helpers import ServerProcess, tiny_args
from webhook_receiver import Receiver


def _send(client: openai.OpenAI, words: int, seconds: float) -> int:
    """Completions with ``words``-word prompts, four at a time, for ``seconds``; returns how many were sent."""
    deadline, sent = time.monotonic() + seconds, 0
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        while time.monotonic() < deadline:
            prompts = [" ".join(f"w{(sent + i + j) % 50}" for j in range(words)) for i in range(4)]
            list(pool.map(lambda p: client.completions.create(model="tiny", prompt=p, max_tokens=2), prompts))
            sent += 4
    return sent


@pytest.mark.slow  # about two minutes: the drift windows are tens of seconds of real traffic
def test_a_live_shift_opens_one_incident(tiny_model_dir, tmp_path):
    server = ServerProcess(tiny_args(tiny_model_dir), tmp_path, "live").wait_ready()
    receiver = Receiver().start()
    config = tmp_path / "monitor.toml"
    config.write_text(f"""
deliver_every = "1s"
[drift]
every = "2s"
reference = "100s..70s"
current = "25s.."
min_rows = 20
[[webhook]]
url = "{receiver.url}"
""")
    monitor = subprocess.Popen([sys.executable, "-m", "ctxops", "monitor", "run", "--config", str(config),
                                "--db", str(server.log_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    client = openai.OpenAI(base_url=server.url, api_key="none")
    try:
        # the reference: a minute of short prompts; the reference window (100 s to 70 s ago) stays empty meanwhile,
        # so nothing is judged before the shift (real latency on a shared machine is not stationary traffic)
        assert _send(client, 8, 60) >= 20
        store = open_store(server.log_path)
        assert _send(client, 200, 30) >= 20  # then prompts 25x longer
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(4)  # more turns of the check: still one incident, one notification
        incidents = list_incidents(store)
        store.close()
    finally:
        monitor.send_signal(signal.SIGTERM)
        output, _ = monitor.communicate(timeout=30)
        server.stop()
        receiver.stop()
    assert monitor.returncode == 0, output
    assert len(incidents) == 1 and "prompt_tokens" in incidents[0]["title"], incidents
    assert len(receiver.received) == 1 and receiver.received[0][1]["incident"]["rule"] == "drift"

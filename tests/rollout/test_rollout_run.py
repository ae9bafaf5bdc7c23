"""`ctxops rollout run` end to end: a real gateway in front of two real `ctxops serve builtin` upstreams.

The degraded candidate is the same model with int4 KV and a streaming press that drops 90% of each prompt's KV:
it loses the needle, its canary shows it, and the rollout rolls back naming the quality metric. An identical
candidate is promoted. Traffic comes from a load thread of real OpenAI-client requests through the gateway.
"""

from __future__ import annotations

import json
import threading
import uuid

import openai
import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.rollout.driver import RolloutDriver
from ctxops.rollout.gateway_admin import GatewayAdmin
from ctxops.rollout.rollout_config import RolloutConfig
from ctxops.store import open_store
from ctxops.store.incidents import list_incidents
from ctxops.store.rollouts import load_rollout
from serve.serve_helpers import ServerProcess

ADMIN_KEY = "adm-rollout"
DEGRADED = ["--kv-cache-dtype", "int4", "--kv-press", "streaming_llm", "--kv-compression-ratio", "0.9"]


def upstream(workdir, name: str, *extra: str) -> ServerProcess:
    return ServerProcess(["builtin", "--kv-cache-memory", "64MiB", *extra], workdir, name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Baseline, identical and degraded upstreams, and a gateway routing all traffic to the baseline."""
    work = tmp_path_factory.mktemp("rollout")
    procs = {"stable": upstream(work, "stable"), "same": upstream(work, "same"),
             "degraded": upstream(work, "degraded", *DEGRADED)}  # fmt: skip
    for proc in procs.values():
        proc.wait_ready(600)
    routes = work / "routes.toml"
    lines = ["[models.builtin-gw]", 'policy = "weighted"']
    for name, weight in (("stable", 100), ("same", 0), ("degraded", 0)):
        lines += ["[[models.builtin-gw.arms]]", f'name = "{name}"', f'upstream = "{procs[name].url}"',
                  f'version = "{name}"', f"weight = {weight}"]  # fmt: skip
    routes.write_text("\n".join(lines) + "\n")
    gateway = ServerProcess(["builtin-gw", "--routes", str(routes), "--admin-key", ADMIN_KEY], work, "gw")
    gateway.wait_ready(600)
    yield work, gateway
    for proc in [gateway, *procs.values()]:
        proc.stop()


class Load:
    """Requests through the gateway from a thread, each from a new user (so weights split them)."""

    def __init__(self, gateway: ServerProcess) -> None:
        self.client = openai.OpenAI(base_url=gateway.url, api_key="none", max_retries=0)
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.client.chat.completions.create(model="builtin-gw", messages=[{"role": "user", "content": "hello"}],
                                                max_tokens=4, user=uuid.uuid4().hex)  # fmt: skip
            self.sent += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)


def config(gateway: ServerProcess, name: str, candidate: str) -> RolloutConfig:
    return RolloutConfig.from_dict({
        "name": name, "gateway": gateway.base, "model": "builtin-gw", "baseline": "stable", "candidate": candidate,
        "steps": [25, 50, 100], "step_seconds": 1, "max_step_seconds": 120, "poll_seconds": 1,
        "canary": {"tasks": ["niah_single_1"], "lengths": [512], "samples": 12, "seed": 7},
        "analysis": {"min_requests": 8, "min_canary_pairs": 12},
    })  # fmt: skip


@pytest.mark.slow
def test_degraded_candidate_rolls_back_naming_quality(stack, monkeypatch):
    work, gateway = stack
    monkeypatch.setenv("CTXOPS_ADMIN_KEY", ADMIN_KEY)
    path = work / "degraded.toml"
    raw = config(gateway, "degraded", "degraded").to_dict()
    path.write_text(_toml(raw))
    db = str(gateway.log_path)  # the store the gateway logs to: the driver judges that traffic
    with Load(gateway):
        result = CliRunner().invoke(cli, ["rollout", "run", "--db", db, "--config", str(path), "--out",
                                          str(work / "runs"), "--json"])  # fmt: skip
    assert result.exit_code == 1, result.output
    start = result.output.index('{\n  "name"')
    print(result.output[:start])  # the driver's log, shown with -s
    state = json.loads(result.output[start:])
    assert state["state"] == "rolled_back" and len(state["history"]) == 1
    assert state["history"][0]["metrics"]["canary_quality"] == "fail"
    assert any(r.startswith("canary_quality") for r in state["history"][0]["reasons"])
    weights = {
        a["name"]: a["weight"] for a in GatewayAdmin(gateway.base, ADMIN_KEY).routes("builtin-gw")["arms"]
    }
    assert weights["degraded"] == 0 and weights["stable"] == 100
    store = open_store(db)
    assert list_incidents(store)[0]["rule"] == "rollout_rollback"
    store.close()
    again = CliRunner().invoke(cli, ["rollout", "run", "--db", db, "--config", str(path)])
    assert again.exit_code == 1 and "already rolled_back" in again.output  # finished: a rerun changes nothing


@pytest.mark.slow
def test_identical_candidate_promotes_and_resumes_after_a_crash(stack, tmp_path):
    work, gateway = stack
    store = open_store(gateway.log_path)  # the gateway's request log: the driver judges its traffic
    admin = GatewayAdmin(gateway.base, ADMIN_KEY)
    cfg = config(gateway, "same", "same")

    def crash_at_step_two(line: str) -> None:
        if line.startswith("step 2:"):
            raise KeyboardInterrupt  # the driver dies as step 2 begins

    with Load(gateway):
        with pytest.raises(KeyboardInterrupt):
            RolloutDriver(store, cfg, admin, tmp_path / "runs", log=crash_at_step_two).run()
        assert load_rollout(store, "same")["state"] == "running"
        lines: list[str] = []
        state = RolloutDriver(store, cfg, admin, tmp_path / "runs", log=lines.append).run()
    print("\n".join(lines))
    assert lines[0] == "resuming rollout same at step 2 of 3"  # where the killed driver was
    assert state["state"] == "promoted" and [h["percent"] for h in state["history"]] == [25, 50, 100]
    assert [h["verdict"] for h in state["history"]] == ["promote"] * 3
    assert {a["name"]: a["weight"] for a in admin.routes("builtin-gw")["arms"]}["same"] == 100
    admin.set_weights({"stable": 100, "same": 0})
    store.close()


def test_bad_rollout_configs_are_refused(tmp_path):
    base = {"name": "r", "gateway": "http://127.0.0.1:1", "model": "m", "baseline": "a", "candidate": "b"}
    for change, message in (({"steps": [50, 25]}, "steps must rise"), ({"candidate": "a"}, "two different arms"),
                            ({"gateway": "localhost"}, "base URL"), ({"stepz": 1}, "unknown key"),
                            ({"analysis": {"alpha": 2}}, "[analysis]: alpha"),
                            ({"canary": {"samples": -1}}, "[canary]")):  # fmt: skip
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            RolloutConfig.from_dict({**base, **change})
    path = tmp_path / "r.toml"
    path.write_text(_toml({**base, "steps": [0]}))
    result = CliRunner().invoke(
        cli, ["rollout", "run", "--db", str(tmp_path / "x.db"), "--config", str(path)]
    )
    assert result.exit_code != 0 and "steps must rise strictly within (0, 100]" in result.output


def _toml(raw: dict) -> str:
    """A small TOML writer for the test's flat config (tables last)."""
    lines, tables = [], []
    for key, value in raw.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]")
            tables += [
                f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in value.items()
            ]
        else:
            lines.append(f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
    return "\n".join(lines + tables) + "\n"

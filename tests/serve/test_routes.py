"""The gateway with a routes file, against real `ctxops serve` upstreams on loopback: arms, policies, admin API."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import httpx
import openai
import pytest
from click.testing import CliRunner
from serve_helpers import ServerProcess, free_port, tiny_args

from ctxops.cli.main import cli
from ctxops.engine.config import EngineConfig
from ctxops.evals.config import EvalConfig
from ctxops.evals.report import write_reports
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval
from ctxops.evals.targets.local import LocalTarget
from ctxops.models.loader import BUILTIN_DIR
from ctxops.serve.config import ServerConfig
from ctxops.serve.request_log import read_rows

ADMIN = {"Authorization": "Bearer adm-key"}


def routes_toml(policy: str, arms: list[dict]) -> str:
    lines = ["[models.tiny-gw]", f'policy = "{policy}"']
    for arm in arms:
        lines.append("[[models.tiny-gw.arms]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in arm.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def routed(main_server, second_server, tiny_model_dir, serve_dir):
    """A gateway whose routes send everyone to arm `a` (weight 1), none to `b` (weight 0); beside it, an `edge`
    upstream that holds only 256 tokens (prompt + output). Both processes start at once."""
    path = serve_dir / "routes.toml"
    path.write_text(routes_toml("weighted", weighted_arms(main_server, second_server)))
    args = ["tiny-gw", "--routes", str(path), "--admin-key", "adm-key", "--api-key", "user-key"]
    edge = ServerProcess(tiny_args(tiny_model_dir, "--max-model-len", "256"), serve_dir, "edge")
    proc = ServerProcess(args, serve_dir, "routed")
    proc.routes_path, proc.edge = path, edge.wait_ready()
    yield proc.wait_ready()
    proc.stop()
    edge.stop()


def weighted_arms(main_server, second_server) -> list[dict]:
    return [{"name": "a", "upstream": main_server.url, "version": "v1", "weight": 1.0},
            {"name": "b", "upstream": second_server.url, "version": "v2", "weight": 0.0}]  # fmt: skip


def put_routes(gateway: ServerProcess, policy: str, arms: list[dict]) -> httpx.Response:
    body = {"models": {"tiny-gw": {"policy": policy, "arms": arms}}}
    return httpx.put(gateway.base + "/admin/routes", headers=ADMIN, json=body)


def ask(gateway: ServerProcess, prompt: str = "hi", max_tokens: int = 2, user: str | None = None):
    client = openai.OpenAI(base_url=gateway.url, api_key="user-key", max_retries=0)
    raw = client.completions.with_raw_response.create(
        model="tiny-gw", prompt=prompt, max_tokens=max_tokens, user=user or "u"
    )
    return raw.headers["x-request-id"], raw.parse()


def arm_of(gateway: ServerProcess, request_id: str) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the log's writer thread commits in batches
        rows = read_rows(gateway.log_path, "request_id = ?", (request_id,))
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError(f"{request_id} never reached the request log")


def test_weights_arms_and_versions_in_the_log_and_a_put_takes_effect_at_once(routed):
    rows = [arm_of(routed, ask(routed, user=f"user-{i}")[0]) for i in range(6)]
    assert {(r["arm"], r["version"], r["route_reason"]) for r in rows} == {("a", "v1", "weighted")}
    put = httpx.put(routed.base + "/admin/routes", headers=ADMIN, json={"weights": {"a": 0, "b": 1}})
    assert put.status_code == 200 and [a["weight"] for a in put.json()["models"]["tiny-gw"]["arms"]] == [0, 1]
    rows = [arm_of(routed, ask(routed, user=f"user-{i}")[0]) for i in range(6)]
    assert {(r["arm"], r["version"]) for r in rows} == {("b", "v2")}  # the very next requests
    httpx.put(routed.base + "/admin/routes", headers=ADMIN, json={"weights": {"a": 1, "b": 0}})


def test_bad_routes_and_keys_leave_the_routes_unchanged(routed):
    before = httpx.get(routed.base + "/admin/routes", headers=ADMIN).json()
    current = json.loads(json.dumps(before))
    arms = current["models"]["tiny-gw"]["arms"]
    cases = {
        "unknown arm 'c'": {"weights": {"c": 1}},
        "weight must be a number >= 0": {"models": {"tiny-gw": {**current["models"]["tiny-gw"],
                                                                 "arms": [{**arms[0], "weight": -1}, arms[1]]}}},
        "policy 'wieghted' is not one of": {"models": {"tiny-gw": {"policy": "wieghted", "arms": arms}}},
        "must name exactly that model": {"models": {"other": {"arms": arms}}},
        "not JSON": "{nope",
    }  # fmt: skip
    for expected, body in cases.items():
        content = body if isinstance(body, str) else json.dumps(body)
        answer = httpx.put(routed.base + "/admin/routes", headers=ADMIN, content=content)
        assert answer.status_code == 400 and expected in answer.json()["error"]["message"], answer.text
    for headers in ({}, {"Authorization": "Bearer user-key"}, {"Authorization": "Bearer wrong"}):
        answer = httpx.put(routed.base + "/admin/routes", headers=headers, json={"weights": {"b": 1}})
        assert answer.status_code == 401 and "admin key" in answer.json()["error"]["message"]
        assert httpx.get(routed.base + "/admin/routes", headers=headers).status_code == 401
    assert httpx.get(routed.base + "/admin/routes", headers=ADMIN).json() == before


def test_sighup_rereads_the_file_and_a_bad_file_changes_nothing(routed, main_server, second_server):
    arms = weighted_arms(main_server, second_server)
    arms[0]["weight"], arms[1]["weight"], arms[1]["version"] = 0.0, 1.0, "v3"
    good = routes_toml("weighted", arms)
    routed.routes_path.write_text(good.replace('"weighted"', '"bogus"'))
    routed.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert arm_of(routed, ask(routed)[0])["arm"] == "a"  # the bad file was refused
    routed.routes_path.write_text(good)
    routed.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert arm_of(routed, ask(routed)[0])["version"] == "v3"
    assert "routes not changed" in routed.output.read_text()
    httpx.put(routed.base + "/admin/routes", headers=ADMIN, json={"weights": {"a": 1, "b": 0}})


def test_feedback_is_stored_and_checked(routed):
    request_id, _ = ask(routed)
    url, auth = routed.base + "/v1/feedback", {"Authorization": "Bearer user-key"}
    assert httpx.post(url, headers=auth, json={"id": request_id, "score": 0.75}).status_code == 200
    assert httpx.post(url, json={"id": request_id, "score": 1}).status_code == 401
    bad = httpx.post(url, headers=auth, json={"id": request_id, "score": 3})
    assert bad.status_code == 400 and "score must be a number in [0, 1]" in bad.json()["error"]["message"]
    from ctxops.store import open_store
    from ctxops.store.schema import feedback

    store = open_store(routed.log_path)
    with store.engine.connect() as conn:
        assert conn.execute(feedback.select()).one().score == 0.75
    store.close()


def test_length_policy_sends_long_prompts_long_and_falls_back_on_context_length(
    routed, main_server, second_server
):
    arms = [{"name": "edge", "upstream": routed.edge.url, "cost": 1.0},
            {"name": "long", "upstream": main_server.url, "cost": 4.0}]  # fmt: skip
    try:
        assert put_routes(routed, "length", arms).status_code == 200
        long_prompt = "word " * 400
        short = arm_of(routed, ask(routed, "short one")[0])
        assert (short["arm"], short["route_reason"]) == ("edge", "length")
        spilled = arm_of(
            routed, ask(routed, long_prompt)[0]
        )  # edge's limit unknown: it answers 400, then long
        assert (spilled["arm"], spilled["route_reason"]) == ("long", "fallback:context_length_exceeded")
        arms[0]["max_model_len"] = 256  # now the gateway counts the prompt (edge's /tokenize) and knows
        assert put_routes(routed, "length", arms).status_code == 200
        direct = arm_of(routed, ask(routed, long_prompt)[0])
        assert (direct["arm"], direct["route_reason"]) == ("long", "length")
        assert arm_of(routed, ask(routed, "short one")[0])["arm"] == "edge"
    finally:
        put_routes(routed, "weighted", weighted_arms(main_server, second_server))


def test_length_policy_reads_an_arms_effective_length_from_its_eval_run(routed, main_server, second_server):
    """An arm that states no effective length gets its version's newest eval run's (the registry, same store)."""
    run_dir = RunDir(routed.log_path.parent / "edge-eval")
    config = EvalConfig(tasks=("niah_single_1",), lengths=(256, 512), samples=3, depths=1)
    asyncio.run(run_eval(config, LocalTarget(EngineConfig(model="builtin")), run_dir, show_progress=False))
    write_reports(run_dir)
    result = CliRunner().invoke(cli, ["registry", "add", "tiny-gw", "--version", "edge-v", "--path",
                                      str(BUILTIN_DIR), "--eval-run", str(run_dir.path),
                                      "--db", str(routed.log_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    arms = [{"name": "edge", "upstream": routed.edge.url, "version": "edge-v", "cost": 1.0},
            {"name": "long", "upstream": main_server.url, "cost": 4.0}]  # fmt: skip
    try:
        put = put_routes(routed, "length", arms)
        assert put.status_code == 200, put.text
        edge = put.json()["models"]["tiny-gw"]["arms"][0]
        assert edge["effective_length"] == 512 and "max_model_len" not in edge  # builtin holds 512 of 512
        short = arm_of(routed, ask(routed, "short one")[0])
        assert (short["arm"], short["route_reason"]) == ("edge", "length")
        # over the edge's measured 512 tokens: sent long at once, not after a context_length_exceeded
        over = arm_of(routed, ask(routed, "word " * 700)[0])
        assert (over["arm"], over["route_reason"]) == ("long", "length")
    finally:
        put_routes(routed, "weighted", weighted_arms(main_server, second_server))


def test_fallback_policy_moves_past_a_dead_arm(routed, main_server, second_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    arms = [{"name": "gone", "upstream": dead, "weight": 1.0}, {"name": "live", "upstream": main_server.url,
                                                                   "weight": 0.0}]  # fmt: skip
    try:
        assert put_routes(routed, "fallback", arms).status_code == 200
        row = arm_of(routed, ask(routed)[0])
        assert (row["arm"], row["route_reason"]) == ("live", "fallback:unreachable")
    finally:
        put_routes(routed, "weighted", weighted_arms(main_server, second_server))


def test_a_bad_routes_file_stops_the_gateway_before_it_binds(serve_dir, main_server):
    path = serve_dir / "bad.toml"
    path.write_text(routes_toml("weighted", [{"name": "a", "upstream": main_server.url, "weight": -2}]))
    proc = ServerProcess(["tiny-gw", "--routes", str(path)], serve_dir, "bad-routes")
    assert proc.proc.wait(60) != 0
    assert "weight must be a number >= 0" in proc.output.read_text()
    with pytest.raises(ValueError, match="differ from every user API key"):
        ServerConfig(api_keys=("k",), admin_key="k")


def test_ensemble_answers_with_the_majority(routed, main_server, second_server):
    arms = [{"name": "a", "upstream": main_server.url}, {"name": "b", "upstream": second_server.url},
            {"name": "edge", "upstream": routed.edge.url}]  # fmt: skip
    client = openai.OpenAI(base_url=routed.url, api_key="user-key", max_retries=0)
    direct = openai.OpenAI(base_url=main_server.url, api_key="x").completions.create(
        model="tiny", prompt="vote", max_tokens=5, temperature=0.0
    )
    try:
        assert put_routes(routed, "ensemble", arms).status_code == 200
        raw = client.completions.with_raw_response.create(model="tiny-gw", prompt="vote", max_tokens=5,
                                                           temperature=0.0)  # fmt: skip
        assert raw.parse().choices[0].text == direct.choices[0].text  # the same model thrice: 3 votes of 3
        row = arm_of(routed, raw.headers["x-request-id"])
        assert (row["arm"], row["route_reason"]) == ("a", "ensemble:majority:3/3")
        streamed = "".join(c.choices[0].text for c in client.completions.create(
            model="tiny-gw", prompt="vote", max_tokens=5, temperature=0.0, stream=True) if c.choices)  # fmt: skip
        assert streamed == direct.choices[0].text
    finally:
        put_routes(routed, "weighted", weighted_arms(main_server, second_server))


def test_an_ensemble_arm_that_keeps_failing_opens_its_breaker_and_sits_the_vote_out(
    routed, main_server, second_server
):
    """The ensemble asks through the gateway's breakers: a dead arm's failures count and open its circuit."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    arms = [{"name": "a", "upstream": main_server.url}, {"name": "b", "upstream": second_server.url},
            {"name": "dead", "upstream": dead}]  # fmt: skip
    try:
        assert put_routes(routed, "ensemble", arms).status_code == 200
        client = openai.OpenAI(base_url=routed.url, api_key="user-key", max_retries=0)
        reasons = []
        for _ in range(7):
            raw = client.completions.with_raw_response.create(model="tiny-gw", prompt="vote", max_tokens=5,
                                                               temperature=0.0)  # fmt: skip
            reasons.append(arm_of(routed, raw.headers["x-request-id"])["route_reason"])
        # five failures in a row open the dead arm's breaker (DEFAULT_FAILURE_THRESHOLD); then it is not asked
        assert reasons == ["ensemble:majority:2/3"] * 5 + ["ensemble:majority:2/2"] * 2, reasons
        metrics = httpx.get(routed.base + "/metrics", headers={"Authorization": "Bearer user-key"}).text
        host = dead.removeprefix("http://").removesuffix("/v1")
        failed = [line for line in metrics.splitlines() if host in line and 'outcome="failed"' in line]
        assert failed and float(failed[0].split()[-1]) == 5.0, failed
        circuit = [
            line for line in metrics.splitlines() if "circuit" in line and host in line and "{" in line
        ]
        assert circuit and circuit[0].endswith(" 1.0"), circuit
    finally:
        put_routes(routed, "weighted", weighted_arms(main_server, second_server))


def test_votes_pick_the_normalized_majority_or_the_first_valid_answer():
    from ctxops.serve.backends.ensemble import pick
    from ctxops.serve.routes import EnsembleMode

    answers = ["Paris", None, " paris. ", "Lyon"]
    assert pick(answers, EnsembleMode.MAJORITY) == (0, 2)
    assert pick(["", "Lyon", "Paris", "paris"], EnsembleMode.FIRST_VALID) == (1, 1)
    assert pick(["a", "b"], EnsembleMode.MAJORITY) == (0, 1)  # a tie goes to the arm listed first
    assert pick([None, "  "], EnsembleMode.MAJORITY) is None

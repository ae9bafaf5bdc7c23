"""The A/B judge on a real store: planted slowdowns, error spikes and canary regressions, and A/A runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.rollout.analysis import AnalysisConfig, analyze
from ctxops.rollout.sequential import msprt_p_value
from ctxops.store import open_store
from ctxops.store.eval_runs import save_run
from ctxops.store.requests import insert_requests


def traffic(
    rng, arm: str, n: int, slow: float = 1.0, errors: float = 0.0, start: float = 1000.0
) -> list[dict]:
    rows = []
    for i in range(n):
        failed = rng.random() < errors
        rows.append({
            "request_id": f"{arm}-{start}-{i}", "created_at": start + i, "endpoint": "chat.completions",
            "model": "m", "arm": arm, "version": arm, "status": 502 if failed else 200,
            "finish_reason": None if failed else ("length" if rng.random() < 0.1 else "stop"),
            "ttft_s": None if failed else float(rng.lognormal(np.log(0.05 * slow), 0.3)),
            "e2e_s": None if failed else float(rng.lognormal(np.log(0.5 * slow), 0.3)),
        })  # fmt: skip
    return rows


def canary(store, arm: str, correct: list[bool], at: float) -> None:
    outcomes = {f"niah_single_1|1024|0.5|{i}": ok for i, ok in enumerate(correct)}
    save_run(store, {"run_id": f"canary:{arm}:{at}", "kind": "canary", "model": f"m@{arm}", "created_at": at,
                     "effective_length": None, "report_path": None, "summary": {"outcomes": outcomes}})  # fmt: skip


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "ab.db")
    yield s
    s.close()


def by_name(result: dict) -> dict:
    return {m["name"]: m for m in result["metrics"]}


def test_same_traffic_promotes(store):
    rng = np.random.default_rng(1)
    insert_requests(store, traffic(rng, "base", 200) + traffic(rng, "cand", 200))
    canary(store, "base", [True] * 15 + [False] * 5, 2000.0)
    canary(store, "cand", [True] * 15 + [False] * 5, 2000.0)
    result = analyze(store, "m", "base", "cand")
    assert result["verdict"] == "promote", result
    assert result["samples"] == {"baseline": 200, "candidate": 200, "canary_pairs": 20}
    assert set(result) >= {"verdict", "samples", "metrics"}
    assert set(result["metrics"][0]) >= {"name", "test", "baseline", "candidate", "p_value", "class"}


def test_slow_candidate_rolls_back_naming_latency(store):
    rng = np.random.default_rng(2)
    insert_requests(store, traffic(rng, "base", 150) + traffic(rng, "cand", 150, slow=2.0))
    result = analyze(store, "m", "base", "cand")
    metrics = by_name(result)
    assert result["verdict"] == "rollback"
    assert metrics["ttft_s"]["class"] == "fail" and metrics["ttft_s"]["test"] == "mann_whitney_u"
    assert any(r.startswith("ttft_s") for r in result["reasons"])
    assert metrics["error_rate"]["class"] == "pass"


def test_error_spike_and_too_few_samples(store):
    rng = np.random.default_rng(3)
    insert_requests(store, traffic(rng, "base", 20) + traffic(rng, "cand", 20))
    assert analyze(store, "m", "base", "cand")["verdict"] == "continue"  # 20 < min_requests
    insert_requests(
        store, traffic(rng, "base", 200, start=5000.0) + traffic(rng, "cand", 200, errors=0.2, start=5000.0)
    )
    result = analyze(store, "m", "base", "cand", since=4000.0)
    errors = by_name(result)["error_rate"]
    assert result["verdict"] == "rollback" and errors["class"] == "fail"
    assert (
        errors["test"] == "fisher_exact" and errors["baseline"] == 0.0
    )  # no baseline errors: the exact test


def test_canary_regression_rolls_back_naming_quality(store):
    rng = np.random.default_rng(4)
    insert_requests(store, traffic(rng, "base", 100) + traffic(rng, "cand", 100))
    canary(store, "base", [True] * 20, 2000.0)
    canary(store, "cand", [True] * 6 + [False] * 14, 2000.0)
    result = analyze(store, "m", "base", "cand")
    quality = by_name(result)["canary_quality"]
    assert result["verdict"] == "rollback" and quality["class"] == "fail"
    assert quality["test"] == "paired_exact_mcnemar" and quality["p_value"] < 0.001
    assert result["reasons"][0].startswith("canary_quality: canary accuracy fell at 1024 tokens (20->6 of 20")


def test_repeated_looks_keep_false_alarms_under_alpha():
    rng = np.random.default_rng(5)
    runs = 300
    alarms = sum(
        msprt_p_value(rng.normal(0, 1, 400), rng.normal(0, 1, 400), tau=0.25) <= 0.05 for _ in range(runs)
    )
    assert alarms / runs <= 0.05  # every prefix looked at, still at most alpha
    assert (
        msprt_p_value(rng.normal(0, 1, 400), rng.normal(0.5, 1, 400), tau=0.25) < 1e-4
    )  # and it finds a real shift


def test_cli_json_and_bad_flags(store, tmp_path):
    rng = np.random.default_rng(6)
    insert_requests(store, traffic(rng, "base", 60) + traffic(rng, "cand", 60))
    db = str(tmp_path / "ab.db")
    result = CliRunner().invoke(cli, ["rollout", "analyze", "--db", db, "--model", "m", "--baseline", "base",
                                      "--candidate", "cand", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["samples"]["baseline"] == 60
    bad = CliRunner().invoke(cli, ["rollout", "analyze", "--db", db, "--model", "m", "--baseline", "base",
                                   "--candidate", "cand", "--latency-ratio", "0.5"])  # fmt: skip
    assert bad.exit_code != 0 and "latency_ratio must be > 1" in bad.output
    bad = CliRunner().invoke(cli, ["rollout", "analyze", "--db", db, "--model", "m", "--baseline", "base",
                                   "--candidate", "cand", "--since", "yesterday"])  # fmt: skip
    assert bad.exit_code != 0 and "neither a relative time" in bad.output
    with pytest.raises(ValueError, match="alpha"):
        AnalysisConfig(alpha=1.5)

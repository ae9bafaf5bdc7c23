"""Drift on a real store (SQLite and Postgres): a shifted metric is found, stationary traffic is not, small windows
give no verdict, and the CLI prints the promised JSON and exit code."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.monitor.drift import DriftConfig, compare_categorical, compare_numeric, decide, detect_drift
from ctxops.monitor.windows import Window
from ctxops.store import open_store
from ctxops.store.requests import insert_requests
from monitor_data import traffic, write_eval_run

T0 = 1_700_000_000.0
REF, CUR = Window(T0, T0 + 3600, "ref"), Window(T0 + 3600, T0 + 7200, "cur")
KEYS = {
    "name",
    "kind",
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "effect",
    "drift",
    "n_reference",
    "n_current",
}


def _store(db_url, current_ttft: float = 0.3, n: int = 800, **current):
    store = open_store(db_url)
    insert_requests(store, traffic(n, T0, 3600, seed=1))
    insert_requests(store, traffic(n, T0 + 3600, 3600, seed=2, ttft_median=current_ttft, **current))
    return store


def test_a_slower_ttft_drifts_and_nothing_else_does(db_url):
    store = _store(db_url, current_ttft=0.3 * 1.4)
    results = {r.name: r for r in detect_drift(store, REF, CUR, DriftConfig())}
    store.close()
    assert results["ttft_s"].drift and results["ttft_s"].p_adjusted < 1e-6
    assert not any(r.drift for name, r in results.items() if name not in ("ttft_s", "e2e_s"))
    assert results["endpoint"].test == "chi2" and results["endpoint"].n_current == 800


def test_stationary_traffic_does_not_drift(db_url):
    store = _store(db_url)
    assert not any(r.drift for r in detect_drift(store, REF, CUR, DriftConfig()))
    store.close()


def test_errors_drift_as_categories(tmp_path):
    store = _store(str(tmp_path / "s.db"), error_share=0.2)
    results = {r.name: r for r in detect_drift(store, REF, CUR, DriftConfig())}
    assert results["status"].drift and results["error_code"].drift and results["finish_reason"].drift
    assert results["status"].effect >= 0.1


def test_significant_but_trivial_is_not_drift():
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(100, 10, 200_000), rng.normal(100.3, 10, 200_000)  # 0.03 sd: p tiny, effect small
    result = compare_numeric("x", ref, cur, DriftConfig())
    decide([result], DriftConfig())
    assert result.p_adjusted < 1e-6 and result.effect < 0.1 and result.drift is False


def test_too_few_rows_is_insufficient_data_not_a_verdict(tmp_path):
    store = open_store(tmp_path / "s.db")
    insert_requests(store, traffic(30, T0, 3600, seed=1) + traffic(500, T0 + 3600, 3600, seed=2))
    results = detect_drift(store, REF, CUR, DriftConfig(min_rows=50))
    assert all(r.drift is None and r.test == "insufficient data" and r.p_value is None for r in results)
    one_value = compare_categorical("endpoint", {"a": 100}, {"a": 90}, DriftConfig())
    assert one_value.p_value == 1.0 and one_value.effect == 0.0


def test_by_upstream_tests_each_group_under_one_fdr(tmp_path):
    store = open_store(tmp_path / "s.db")
    for seed, (upstream, slow) in enumerate([("a:1", 1.0), ("b:1", 1.6)]):
        insert_requests(store, traffic(400, T0, 3600, seed=10 + seed, upstream=upstream))
        insert_requests(
            store, traffic(400, T0 + 3600, 3600, seed=20 + seed, upstream=upstream, ttft_median=0.3 * slow)
        )
    results = detect_drift(store, REF, CUR, DriftConfig(), by="upstream")
    drifted = {(r.group, r.name) for r in results if r.drift}
    assert ("b:1", "ttft_s") in drifted and not any(group == "a:1" for group, _ in drifted)
    assert len(results) == 22


def test_cli_json_exit_code_and_beyond_effective_length(tmp_path):
    db = str(tmp_path / "s.db")
    _store(db, current_ttft=0.3 * 1.4, prompt_median=5000.0).close()  # longer prompts now
    write_eval_run(tmp_path / "run", "m", {1024: 1.0, 2048: 1.0, 4096: 1.0, 8192: 0.2})
    args = ["monitor", "drift", "--db", db, "--reference", "2023-11-14T22:13:20..2023-11-14T23:13:20",
            "--current", "2023-11-14T23:13:20..2023-11-15T00:13:20", "--eval-run", str(tmp_path / "run"), "--json"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["drift"] is True and all(set(m) >= KEYS for m in report["metrics"])
    assert {m["name"] for m in report["metrics"] if m["drift"]} >= {"ttft_s", "prompt_tokens"}
    beyond = report["beyond_effective_length"][0]
    assert beyond["model"] == "m" and beyond["effective_length"] == 4096 and beyond["alert"] is True
    assert beyond["share_reference"] < 0.1 < 0.5 < beyond["share_current"]
    failed = CliRunner().invoke(cli, [*args, "--fail-on-drift"])
    assert failed.exit_code == 1


@pytest.mark.parametrize(
    "args, message",
    [(["--reference", "7d", "--current", "1h.."], "START..END"),
     (["--reference", "7d..1h", "--current", "1h..", "--alpha", "2"], "alpha must be in"),
     (["--reference", "7d..1h", "--current", "1h..", "--db", "postgresql://u:pw@127.0.0.1:1/x"], "cannot open"),
     (["--reference", "7d..1h", "--current", "1h.."], "no database at")],
)  # fmt: skip
def test_cli_errors_are_one_clear_line(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["monitor", "drift", "--db", str(tmp_path / "s.db"), *args])
    assert (
        result.exit_code == (1 if message in ("cannot open", "no database at") else 2)
        and message in result.output
    )
    assert "Traceback" not in result.output and "pw" not in result.output

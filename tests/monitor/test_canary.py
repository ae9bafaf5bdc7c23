"""Canaries: the exact paired test finds a drop at one length and nothing in noise; a real `ctxops serve` probed
twice records a baseline, then a run that pairs with it sample by sample."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from scipy import stats

from ctxops.cli.main import cli
from ctxops.monitor.canary import compare_runs
from ctxops.store import open_store
from ctxops.store.incidents import list_incidents


def _outcomes(correct_by_length: dict[int, list[bool]]) -> dict[str, bool]:
    return {
        f"niah_single_1|{n}|0.5|{seed}": ok
        for n, oks in correct_by_length.items()
        for seed, ok in enumerate(oks)
    }


def test_a_drop_at_one_length_is_a_regression_and_only_there():
    baseline = _outcomes({1024: [True] * 40, 8192: [True] * 36 + [False] * 4})
    current = _outcomes({1024: [True] * 40, 8192: [False] * 12 + [True] * 24 + [False] * 4})
    short, long = compare_runs(baseline, current, alpha=0.05)
    assert (short.length, short.worse, short.better, short.regression) == (1024, 0, 0, False)
    assert (long.worse, long.better, long.baseline_correct, long.current_correct) == (12, 0, 36, 24)
    assert long.p_value == pytest.approx(stats.binomtest(12, 12, 0.5, alternative="greater").pvalue)
    assert long.regression and long.p_adjusted == pytest.approx(2 * long.p_value, rel=1e-9)


def test_balanced_flips_and_improvements_are_not_regressions():
    baseline = _outcomes({4096: [True] * 10 + [False] * 10 + [True] * 20})
    noisy = _outcomes({4096: [False] * 10 + [True] * 10 + [True] * 20})  # 10 worse, 10 better
    better = _outcomes({4096: [True] * 40})
    assert not compare_runs(baseline, noisy, 0.05)[0].regression
    assert not compare_runs(baseline, better, 0.05)[0].regression
    assert compare_runs(baseline, {}, 0.05) == []


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir, tmp_path_factory):
    from serve.serve_helpers import ServerProcess, tiny_args

    server = ServerProcess(tiny_args(tiny_model_dir), tmp_path_factory.mktemp("canary"), "canary")
    yield server.wait_ready()
    server.stop()


@pytest.mark.slow  # starts a server and runs the eval harness twice (~20-50 s on two cores)
def test_canary_against_a_real_server(tiny_server, tmp_path):
    db = str(tmp_path / "s.db")
    args = ["monitor", "canary", "--db", db, "--endpoint", tiny_server.url, "--model-name", "tiny",
            "--lengths", "512,1024", "--samples", "4", "--out", str(tmp_path / "runs"), "--once", "--json"]  # fmt: skip
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["baseline"] is None
    second = CliRunner().invoke(cli, args)
    report = json.loads(second.output)
    assert report["baseline"] == json.loads(first.output)["run"] and report["regression"] is False
    assert [c["length"] for c in report["lengths"]] == [512, 1024] and all(
        c["n_pairs"] == 4 for c in report["lengths"]
    )
    assert all(c["worse"] == c["better"] == 0 for c in report["lengths"])  # greedy decoding: the same answers
    store = open_store(db)
    assert not list_incidents(store)
    store.close()
    bad = CliRunner().invoke(cli, [*args[:-1], "--baseline", str(tmp_path / "nowhere")])
    assert bad.exit_code == 1 and "not a canary run in the store nor an eval run directory" in bad.output

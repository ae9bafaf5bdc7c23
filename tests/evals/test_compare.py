from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.evals.compare import compare_runs
from ctxops.evals.config import EvalConfig
from ctxops.evals.rundir import RunDir
from evals.conftest import echo_run

CONFIG = EvalConfig(tasks=("niah_single_1", "fwe"), lengths=(1024, 2048), samples=20, depths=5, concurrency=4)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, counter):
    base = tmp_path_factory.mktemp("runs")

    def make(name, correct):
        return echo_run(base / name, CONFIG, counter, correct)

    return {
        "a": make("a", True),
        "a2": make("a2", True),
        # planted regression: the long length loses two thirds of its samples
        "worse": make("worse", lambda s: s.spec.length == 1024 or s.spec.seed % 3 == 0),
        "slightly": make(
            "slightly", lambda s: s.spec.seed != 42 or s.spec.length != 2048 or s.spec.task != "fwe"
        ),
    }


def test_identical_runs_pass(runs):
    result = compare_runs(runs["a"], runs["a2"], resamples=2000)
    assert result["verdict"] == "no significant change" and result["paired"] == 80
    assert result["overall"]["delta"] == 0 and result["overall"]["mcnemar_p"] == 1.0
    assert result["different_prompts"] == 0
    assert result["setting_differences"] == [] and result["unreadable_lines"] == {"a": [], "b": []}


def test_planted_regression_is_flagged(runs):
    result = compare_runs(runs["a"], runs["worse"], resamples=2000)
    assert result["verdict"] == "regression"
    assert result["per_length"]["1024"]["verdict"] == "no significant change"
    assert result["per_length"]["2048"]["verdict"] == "regression"
    assert result["overall"]["mcnemar_p"] < 0.001 and result["overall"]["delta_high"] < 0
    assert compare_runs(runs["worse"], runs["a"], resamples=2000)["verdict"] == "improvement"


def test_one_flipped_sample_is_not_significant(runs):
    result = compare_runs(runs["a"], runs["slightly"], resamples=2000)
    assert result["overall"]["only_a_correct"] == 1 and result["verdict"] == "no significant change"


def test_cli_fail_on_regression(runs):
    ok = CliRunner().invoke(
        cli, ["compare", str(runs["a"].path), str(runs["a2"].path), "--fail-on-regression"]
    )
    assert ok.exit_code == 0, ok.output
    assert "no significant change" in ok.output
    bad = CliRunner().invoke(
        cli, ["compare", str(runs["a"].path), str(runs["worse"].path), "--fail-on-regression"]
    )
    assert bad.exit_code == 1 and "regression" in bad.output
    as_json = CliRunner().invoke(cli, ["compare", str(runs["a"].path), str(runs["worse"].path), "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)["verdict"] == "regression"


def test_lines_without_a_record_are_counted_not_compared(runs, tmp_path):
    copy = RunDir(shutil.copytree(runs["a2"].path, tmp_path / "a2"))
    lines = copy.samples_path.read_text().splitlines()
    lines[2] = lines[2][:40]
    copy.samples_path.write_text("\n".join(lines) + "\n")
    result = compare_runs(runs["a"], copy, resamples=200)
    assert result["unreadable_lines"] == {"a": [], "b": [3]} and result["only_in_a"] == 1
    shown = CliRunner().invoke(cli, ["compare", str(runs["a"].path), str(copy.path)], env={"COLUMNS": "300"})
    assert "1 samples.jsonl lines without a record (line 3) were left out" in " ".join(shown.output.split())

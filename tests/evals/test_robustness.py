from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from ctxops.cli.main import cli
from ctxops.evals import robustness
from ctxops.evals.config import EvalConfig
from ctxops.evals.perturb import expand, perturbation
from ctxops.evals.report import write_reports
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval
from ctxops.evals.sample import SampleSpec
from ctxops.evals.stats import wilson
from ctxops.evals.tasks import TaskError, build_sample
from evals.conftest import EchoTarget, echo_run

TASKS = ("niah_single_1",)
PERTURB = tuple(expand("placement=middle,noise", TASKS).items())
CONFIG = EvalConfig(tasks=TASKS, lengths=(1024,), samples=8, depths=4, concurrency=4, perturb=PERTURB)


def record(seed, correct, variant="", task="t", length=1024):
    return {"task": task, "length": length, "depth": 0.5, "seed": seed, "score": float(correct),
            "correct": correct, **({"variant": variant} if variant else {})}  # fmt: skip


def table(both, only_clean, only_perturbed, neither, variant="noise=typos", **kw):
    """A hand-made paired table: counts of (clean, perturbed) outcomes."""
    cells = [(1, 1)] * both + [(1, 0)] * only_clean + [(0, 1)] * only_perturbed + [(0, 0)] * neither
    out = []
    for seed, (c, p) in enumerate(cells):
        out += [record(seed, bool(c), **kw), record(seed, bool(p), variant, **kw)]
    return out


def test_brittleness_matches_scipy_on_a_hand_made_table():
    records = table(both=12, only_clean=9, only_perturbed=2, neither=7)
    [(variant, pairs)] = robustness.pairs_by_variant(records).items()
    result = robustness.brittleness(pairs, resamples=20_000)
    assert variant == "noise=typos" and result["n"] == 30
    assert result["clean"] == pytest.approx(70.0) and result["perturbed"] == pytest.approx(1400 / 30)
    assert result["drop"] == pytest.approx(100 * 7 / 30)
    assert (result["only_clean_correct"], result["only_perturbed_correct"]) == (9, 2)
    assert result["mcnemar_p"] == pytest.approx(scipy_stats.binomtest(9, 11, 0.5).pvalue)
    diffs = np.array([c["score"] - p["score"] for c, p in pairs])
    reference = scipy_stats.bootstrap(
        (diffs,), np.mean, n_resamples=20_000, method="percentile", random_state=1
    )
    low, high = reference.confidence_interval
    assert result["drop_low"] == pytest.approx(100 * low, abs=2.5)
    assert result["drop_high"] == pytest.approx(100 * high, abs=2.5)


def test_a_table_without_discordant_pairs_has_no_drop():
    result = robustness.brittleness(robustness.pairs_by_variant(table(5, 0, 0, 3))["noise=typos"])
    assert (
        result["drop"] == 0 and result["mcnemar_p"] == 1.0 and result["drop_low"] == result["drop_high"] == 0
    )


def test_robust_effective_length_is_the_worst_variants_with_wilson_bounds():
    records = []
    for length, (x, y) in {1024: (20, 20), 2048: (20, 10), 4096: (10, 10)}.items():
        records += table(x, 20 - x, 0, 0, "haystack=code", length=length)
        records += [record(s, s < y, "lexical=landmark", length=length) for s in range(20)]
    summary = robustness.summarize_robustness(records, {}, threshold=85.6, resamples=2000)
    eff = summary["robust_effective_length"]
    assert eff["variant"] == "lexical=landmark" and eff["point_estimate"] == 1024
    assert eff["lower_bound"] == (1024 if 100 * wilson(1.0, 20)[0] >= 85.6 else None)
    assert eff["upper_bound"] == (2048 if 100 * wilson(0.5, 20)[1] >= 85.6 else 1024)
    assert summary["variants"][0]["variant"] == "lexical=landmark"  # worst first
    assert [r["length"] for r in summary["by_length"] if r["variant"] == "haystack=code"] == [
        1024,
        2048,
        4096,
    ]


def test_model_card_splits_in_distribution_from_held_out(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(
        "---\nlicense: mit\nctxops:\n  trained_on:\n    tasks: [t]\n    perturbations: [noise]\n---\n"
    )
    trained = robustness.read_trained_on(tmp_path)
    assert trained == {"tasks": ["t"], "perturbations": ["noise"]}
    records = table(10, 0, 0, 0, "noise=typos") + table(4, 6, 0, 0, "lexical=landmark")
    splits = robustness.summarize_robustness(records, {"trained_on": trained}, resamples=500)["splits"]
    assert splits["in-distribution"]["drop"] == 0 and splits["held-out"]["drop"] == pytest.approx(60)
    assert robustness.split_of("other", "noise=typos", trained) == "held-out"
    (tmp_path / "bad.md").write_text("---\nctxops: {trained_on: [1, 2]}\n---\n")
    with pytest.raises(ValueError, match="bad.md: ctxops.trained_on must map"):
        robustness.read_trained_on(tmp_path / "bad.md")
    assert robustness.read_trained_on(tmp_path / "missing.md") is None


@pytest.fixture(scope="module")
def perturbed_runs(tmp_path_factory, counter):
    base = tmp_path_factory.mktemp("perturbed")

    def make(name, correct):
        return echo_run(base / name, CONFIG, counter, correct)

    return {"a": make("a", True), "a2": make("a2", True),
            "brittle": make("brittle", lambda s: s.spec.variant != "noise=typos")}  # fmt: skip


def test_a_perturbed_run_reports_robustness_and_keeps_clean_tables_clean(perturbed_runs):
    run_dir = perturbed_runs["brittle"]
    records = list(run_dir.records())
    assert len(records) == 8 * 4 and {r.get("variant") for r in records} == {
        None,
        *dict(PERTURB)["niah_single_1"],
    }
    summary = write_reports(run_dir)
    assert summary["num_samples"] == 8 and summary["overall"]["1024"]["score"] == 100
    worst = summary["robustness"]["variants"][0]
    assert worst["variant"] == "noise=typos" and worst["drop"] == 100 and worst["mcnemar_p"] < 0.01
    assert json.loads(run_dir.file("run.json").read_text())["perturb"] == {
        "niah_single_1": ["placement=middle", "noise=typos", "noise=casing"]
    }
    page = run_dir.file("report.html").read_text()
    assert 'id="robustness-table"' in page and page.index("noise=typos") < page.index("noise=casing")


def test_compare_fails_on_a_brittleness_regression_only(perturbed_runs):
    a, a2, brittle = (str(perturbed_runs[k].path) for k in ("a", "a2", "brittle"))
    same = CliRunner().invoke(cli, ["compare", a, a2, "--fail-on-regression"])
    assert same.exit_code == 0, same.output
    worse = CliRunner().invoke(cli, ["compare", a, brittle, "--fail-on-regression", "--json"])
    assert worse.exit_code == 1
    result = json.loads(worse.output)
    assert result["verdict"] == "no significant change"  # the clean items did not move
    assert result["brittleness"]["regressions"] == ["noise=typos"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--perturb", "bogus"], "unknown perturbation family 'bogus'; choose from: distractors"),
        (["--tasks", "vt", "--perturb", "lexical"], "families that apply to vt: placement, noise"),
    ],
)
def test_cli_eval_refuses_bad_perturbations(tmp_path, tiny_model_dir, args, message):
    result = CliRunner().invoke(
        cli, ["eval", "--model", str(tiny_model_dir), "--out", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_variant_that_cannot_fit_a_length_is_left_out_with_a_warning(tmp_path, counter):
    config = EvalConfig(tasks=TASKS, lengths=(1024, 2048), samples=2, depths=2, concurrency=2,
                        perturb=(("niah_single_1", ("distractors=32",)),))  # fmt: skip
    run_dir = RunDir(tmp_path / "r")
    outcome = asyncio.run(run_eval(config, EchoTarget(counter), run_dir, show_progress=False))
    assert outcome.complete and outcome.planned == 6
    assert any("distractors=32 at 1024 tokens (niah_single_1)" in w for w in outcome.warnings)
    assert {(r["length"], r.get("variant")) for r in run_dir.records()} == {
        (1024, None),
        (2048, None),
        (2048, "distractors=32"),
    }


def test_a_variant_sample_that_alone_does_not_fit_is_left_out_and_the_run_completes(tmp_path, counter):
    def fits(length, seed):
        try:
            build_sample("niah_single_1", length, 0.5, seed, counter, variant="distractors=32",
                         perturbation=perturbation(SampleSpec("niah_single_1", length, 0.5, seed, "distractors=32")))  # fmt: skip
        except TaskError:
            return False
        return True

    # a length where the first sample's 32 near-miss needles fit and a later sample's (longer keys) do not
    length = next(
        n for n in range(900, 1400, 4) if fits(n, 42) and not all(fits(n, s) for s in range(43, 48))
    )
    config = EvalConfig(tasks=TASKS, lengths=(length,), samples=6, depths=1, concurrency=2,
                        perturb=(("niah_single_1", ("distractors=32",)),))  # fmt: skip
    outcome = asyncio.run(run_eval(config, EchoTarget(counter), RunDir(tmp_path / "r"), show_progress=False))
    assert outcome.complete and outcome.failed == 0 and 6 < outcome.planned < 12
    assert any("left out: length" in w for w in outcome.warnings)

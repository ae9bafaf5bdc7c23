from __future__ import annotations

import math

import pytest

from ctxops.evals import stats
from ctxops.evals.config import EvalConfig, depth_grid, parse_lengths, parse_tasks
from ctxops.evals.sample import Metric
from ctxops.evals.scoring import clean, score, string_match_all, string_match_part
from ctxops.evals.tasks import TaskError


def test_string_match_all_is_the_fraction_found_case_insensitively():
    assert string_match_all("The numbers are 123 and 456.", ["123", "456"]) == 1.0
    assert string_match_all("only 123", ["123", "456"]) == 0.5
    assert string_match_all("APPLE pie", ["apple"]) == 1.0
    assert string_match_all("", ["x"]) == 0.0
    assert string_match_all("a\x00b\x07c", ["abc"]) == 0.0  # RULER: a control character becomes a newline


@pytest.mark.parametrize(
    ("metric", "output", "answers", "expected"),
    [
        (Metric.ALL, "12\x0034", ["1234"], 0.0),  # RULER: a control character becomes a newline, splitting it
        (Metric.ALL, "12\t34", ["1234"], 0.0),  # so does a tab
        (Metric.ALL, "\x1b[0m4412\x1b", ["4412"], 1.0),  # ANSI escapes around the answer
        (Metric.ALL, "A\x1fB", ["a\nb"], 1.0),  # \x1f is a newline after cleaning
        (Metric.ALL, "caf\x7fe", ["cafe"], 0.0),  # \x7f is left alone (outside \x00-\x1f)
        (Metric.ALL, "  \n 4412 \x00", ["4412"], 1.0),
        (Metric.ALL, "FLUFFY-DOG", ["fluffy-dog"], 1.0),  # case-insensitive
        (Metric.ALL, "123 123 123", ["123", "456"], 0.5),  # a repeated answer counts once
        (Metric.ALL, "1 and 3", ["1", "2", "3", "4"], 0.5),  # partial multi-value answer
        (Metric.ALL, "8812345", ["12345"], 1.0),  # a number inside a longer number counts (substring)
        (Metric.ANY, "very wide", ["wide", "narrow"], 1.0),
        (Metric.ANY, "", ["wide"], 0.0),
    ],
)
def test_ruler_cleaning_and_matching_hand_cases(metric, output, answers, expected):
    assert score(metric, output, answers) == expected


def test_string_match_part_is_any_alias():
    assert string_match_part("It was Paris.", ["paris", "City of Light"]) == 1.0
    assert string_match_part("London", ["paris", "City of Light"]) == 0.0
    assert score(Metric.ANY, "partial: city of light", ["paris", "City of Light"]) == 1.0
    assert score(Metric.ALL, "partial: city of light", ["paris", "City of Light"]) == 0.5
    assert clean("  \tx\n ") == "x"
    assert clean("a\x00b") == "a\nb"
    with pytest.raises(ValueError):
        score(Metric.ALL, "x", [])


def test_wilson_matches_the_textbook_value():
    low, high = stats.wilson(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    low, high = stats.wilson(1.0, 20)
    assert high == 1.0 and low == pytest.approx(0.8389, abs=1e-4)
    assert stats.wilson(0.0, 0) == (0.0, 1.0)


def test_effective_length_both_definitions():
    scores = {4096: 95.0, 8192: 90.0, 16384: 80.0, 32768: 88.0}
    assert stats.effective_length(scores) == 8192  # the first failure ends it; 32K's rebound does not count
    assert stats.effective_length({4096: 50.0}) is None


def test_mcnemar_exact_and_paired_bootstrap():
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(10, 0) == pytest.approx(2 * 0.5**10)
    assert stats.mcnemar_exact(5, 5) == 1.0
    mean, low, high = stats.paired_bootstrap([0.0] * 50, resamples=500)
    assert mean == low == high == 0.0
    diffs = [-1.0] * 30 + [0.0] * 70
    mean, low, high = stats.paired_bootstrap(diffs, ["a"] * 50 + ["b"] * 50, resamples=2000)
    assert mean == pytest.approx(-0.3) and low < mean < high < 0
    p = stats.percentiles([1.0, 2.0, 3.0, None])
    assert p["p50"] == 2.0 and math.isclose(p["p90"], 2.8)


def test_parse_lengths():
    assert parse_lengths("1k,2k,4096") == (1024, 2048, 4096)
    assert parse_lengths("128K, 1.5k") == (1536, 131072)
    for bad in ("1q", "", "4k,", "-1k", "10"):
        with pytest.raises(ValueError):
            parse_lengths(bad)
    with pytest.raises(ValueError, match="'1q'.*4k"):
        parse_lengths("1q")


def test_parse_tasks_and_plan():
    assert (
        "vt" in parse_tasks("ruler") and "qa" not in parse_tasks("ruler") and len(parse_tasks("ruler")) == 13
    )
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        parse_tasks("vt,nope")
    assert depth_grid(5) == (0.0, 0.25, 0.5, 0.75, 1.0)
    config = EvalConfig(tasks=("niah_single_1", "cwe"), lengths=(1024, 2048), samples=4, depths=3)
    plan = config.plan()
    assert len(plan) == 2 * 2 * 4 and len({s.key for s in plan}) == len(plan)
    assert [s.depth for s in plan[:4]] == [0.0, 0.5, 1.0, 0.0]
    assert all(s.depth is None for s in plan if s.task == "cwe")
    with pytest.raises(TaskError, match="--qa-file"):
        EvalConfig(tasks=("qa",))

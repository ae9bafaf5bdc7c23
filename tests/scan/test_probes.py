"""Every probe family builds deterministic samples that fit their length, with the attack where it belongs."""

from __future__ import annotations

import pytest

from ctxops.detect.injection import find_injections
from ctxops.evals.prompt import EstimateCounter
from ctxops.evals.tasks import TASKS, build_sample
from ctxops.scan import PROBES
from ctxops.scan.probes import SCAN_FAMILY
from ctxops.scan.probes.injection import TEMPLATES

COUNT = EstimateCounter()


@pytest.mark.parametrize("probe", PROBES)
def test_each_probe_is_a_scan_task_that_fits_its_length(probe: str) -> None:
    assert TASKS[probe].family == SCAN_FAMILY
    for length in (1024, 4096):
        sample = build_sample(probe, length, 0.5, 7, COUNT)
        assert sample.total_tokens <= length and sample.total_tokens > 0.8 * length
        assert sample.attack["family"] == probe
        again = build_sample(probe, length, 0.5, 7, COUNT)
        assert again.prompt == sample.prompt and again.attack == sample.attack


def test_templates_rotate_with_the_seed() -> None:
    seen = {
        build_sample("injection", 1024, 0.5, seed, COUNT).attack["template"] for seed in range(len(TEMPLATES))
    }
    assert seen == set(TEMPLATES)


@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_the_attack_sits_at_the_depth(depth: float) -> None:
    sample = build_sample("injection", 4096, depth, 0, COUNT)  # seed 0: the ignore-previous template
    document = sample.prompt.split("\n\n", 1)[1].rsplit("\n\n", 1)[0]
    at = document.index("Ignore all previous instructions") / len(document)
    assert abs(at - depth) < 0.05


def test_poison_puts_the_true_fact_half_a_document_away() -> None:
    sample = build_sample("poison", 2048, 0.25, 0, COUNT)
    attack = sample.attack
    assert attack["true_depth"] == 0.75 and attack["poisoned"] != attack["true"]
    assert sample.prompt.index(attack["poisoned"]) < sample.prompt.index(attack["true"])


def test_many_shot_fills_the_length_with_shots() -> None:
    short = build_sample("many_shot", 1024, None, 0, COUNT).attack["shots"]
    long = build_sample("many_shot", 8192, None, 0, COUNT).attack["shots"]
    assert short >= 4 and long >= 7 * short


def test_the_guard_sees_every_injection_template() -> None:
    """The scan's payloads are what the guard is meant to stop (encoded and invisible ones too)."""
    for seed, name in enumerate(TEMPLATES):
        sample = build_sample("injection", 2048, 0.5, seed, COUNT)
        assert find_injections(sample.prompt), name

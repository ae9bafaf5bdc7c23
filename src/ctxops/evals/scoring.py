r"""RULER's scoring rules on model outputs: substring matches against the gold answers, after RULER's cleaning.

Cleaning is RULER's (``postprocess_pred`` in its ``scripts/eval/evaluate.py``): strip surrounding whitespace, turn
every control character ``\x00``-``\x1f`` into a newline, strip again. A control character therefore splits a word
("12\x0034" does not contain "1234"), and characters from ``\x7f`` up are left alone. Matching is case-insensitive.
``string_match_all`` scores the fraction of gold answers found (niah, vt, cwe, fwe); ``string_match_part`` scores
1 if any gold answer is found (QA, where answers are aliases). A sample is *correct* when its score is 1. RULER
rounds a task's mean to two decimals; reports here keep the unrounded mean. This module knows strings, not tasks or
models.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ctxops.evals.sample import Metric

_CONTROL = re.compile(r"[\x00-\x1f]")


def clean(text: str) -> str:
    """RULER's cleaning: strip, control characters (tab and newline included) to newlines, strip again."""
    return _CONTROL.sub("\n", text.strip()).strip()


def string_match_all(output: str, answers: Sequence[str]) -> float:
    """Fraction of ``answers`` that occur in the cleaned ``output`` (case-insensitive substrings), from 0 to 1."""
    text = clean(output).lower()
    return sum(a.lower() in text for a in answers) / len(answers)


def string_match_part(output: str, answers: Sequence[str]) -> float:
    """1.0 if any of ``answers`` occurs in the cleaned ``output`` (case-insensitive), else 0.0."""
    text = clean(output).lower()
    return float(any(a.lower() in text for a in answers))


def score(metric: Metric, output: str, answers: Sequence[str]) -> float:
    """Score one output under ``metric`` (0 to 1; reports multiply by 100 as RULER does)."""
    if not answers:
        raise ValueError("cannot score against an empty list of answers")
    if metric is Metric.ALL:
        return string_match_all(output, answers)
    return string_match_part(output, answers)

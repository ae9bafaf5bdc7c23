"""Runs the real ``ctxops`` CLI with one fault injected into its engine, chosen by ``CTXOPS_TEST_FAULT``.

- ``sample``: sampling a request with seed 666 raises at its first token; with seed 668, at its fourth.
- ``die``: the scheduler's bookkeeping raises once a request with seed 667 runs (an engine-wide failure).

Everything else is the production code path; the fault tests start servers with this in place of ``-m ctxops``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

from ctxops.cli.main import cli
from ctxops.engine.sampler import Sampler
from ctxops.engine.scheduler import Scheduler

FAIL_AT_FIRST, DIE, FAIL_AT_FOURTH = 666, 667, 668


def _inject_sampling_fault() -> None:
    original = Sampler._sample_row
    calls: Counter[str] = Counter()

    def sample_row(self, logits, request_id, p):
        calls[request_id] += 1
        if p.seed == FAIL_AT_FIRST or (p.seed == FAIL_AT_FOURTH and calls[request_id] >= 4):
            raise OverflowError(f"injected fault in sampling (seed {p.seed})")
        return original(self, logits, request_id, p)

    Sampler._sample_row = sample_row


def _inject_engine_death() -> None:
    original = Scheduler.advance

    def advance(self, scheduled):
        if any(s.seq.params.seed == DIE for s in scheduled):
            raise AssertionError("injected fault: scheduler state corrupt")
        return original(self, scheduled)

    Scheduler.advance = advance


if __name__ == "__main__":
    {"sample": _inject_sampling_fault, "die": _inject_engine_death}[os.environ["CTXOPS_TEST_FAULT"]]()
    sys.exit(cli())

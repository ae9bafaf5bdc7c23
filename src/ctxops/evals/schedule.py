"""The order samples are sent in, so a haystack prefix that samples share is computed once.

Samples of one task and length often share their prompt up to the first needle: a noise haystack is the same text
in every sample, and RULER's essay haystack always starts at the same place. A target with a prefix cache (the
embedded engine, vLLM, SGLang) reuses a prefix only once some request has finished computing it; sent together,
eight samples compute the same prefix eight times. So :func:`prefix_order` sends each (task, length) group deepest
needle first, and :class:`PrefixGate` holds a sample back until its group's first sample (the *leader*) has
finished, when the two prompts share at least :data:`MIN_SHARED` of the sample's text; samples that share less go
at once. Samples wait after they are built, so building (tokenizer work) still overlaps the leader's request.
This module knows specs and prompt text, not targets or scoring.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

from ctxops.evals.sample import Sample, SampleSpec

MIN_SHARED = 0.25  # fraction of a sample's prompt it must share with its leader's to wait for it

Group = tuple[str, int]


def prefix_order(specs: Iterable[SampleSpec]) -> list[SampleSpec]:
    """Group by (task, length) in first-seen order; deepest needle first within a group (stable otherwise)."""
    specs = list(specs)
    first_seen: dict[Group, int] = {}
    for spec in specs:
        first_seen.setdefault((spec.task, spec.length), len(first_seen))
    return sorted(specs, key=lambda s: (first_seen[(s.task, s.length)], -(s.depth or 0.0)))


class PrefixGate:
    """Holds samples back until their group's leader has finished (see the module docstring)."""

    def __init__(self, specs: Iterable[SampleSpec]) -> None:
        self._leaders: dict[Group, tuple] = {}
        for spec in specs:
            self._leaders.setdefault((spec.task, spec.length), spec.key)
        self._done: dict[Group, asyncio.Event] = {group: asyncio.Event() for group in self._leaders}
        self._text: dict[Group, str] = {}
        self._ready: dict[Group, asyncio.Event] = {group: asyncio.Event() for group in self._leaders}

    def is_leader(self, spec: SampleSpec) -> bool:
        return self._leaders.get((spec.task, spec.length)) == spec.key

    async def wait(self, sample: Sample) -> None:
        """Return when ``sample`` may be sent: at once for a leader or a sample that shares little with it."""
        spec = sample.spec
        group = (spec.task, spec.length)
        if group not in self._leaders:
            return
        if self.is_leader(spec):
            self._text[group] = sample.verbatim_text
            self._ready[group].set()
            return
        await self._ready[group].wait()
        leader = self._text.get(group)  # None: the leader failed before it was built
        text = sample.verbatim_text
        if leader is not None and len(os.path.commonprefix([leader, text])) >= MIN_SHARED * len(text):
            await self._done[group].wait()

    def release(self, spec: SampleSpec) -> None:
        """The leader of ``spec``'s group has finished (or failed): let its group go."""
        group = (spec.task, spec.length)
        if self.is_leader(spec):
            self._ready[group].set()  # a leader that failed to build still releases its group
            self._done[group].set()

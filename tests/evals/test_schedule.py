from __future__ import annotations

import asyncio

from ctxops.evals.sample import Metric, Sample, SampleSpec
from ctxops.evals.schedule import PrefixGate, prefix_order


def _sample(spec: SampleSpec, prompt: str) -> Sample:
    return Sample(spec, prompt, "", ("x",), 8, Metric.ALL, 10)


def test_prefix_order_groups_by_task_and_length_deepest_first():
    specs = [SampleSpec("a", 1024, d, i) for i, d in enumerate((0.0, 0.5, 1.0))]
    specs += [SampleSpec("b", 1024, None, 9), SampleSpec("a", 2048, 0.25, 3), SampleSpec("a", 1024, 0.75, 4)]
    order = prefix_order(specs)
    assert [(s.task, s.length, s.depth) for s in order] == [
        ("a", 1024, 1.0), ("a", 1024, 0.75), ("a", 1024, 0.5), ("a", 1024, 0.0), ("b", 1024, None),
        ("a", 2048, 0.25),
    ]  # fmt: skip


def test_followers_that_share_the_prefix_wait_for_the_leader():
    haystack = "grass is green. " * 50
    leader = SampleSpec("a", 1024, 1.0, 1)
    sharing = SampleSpec("a", 1024, 0.5, 2)
    alone = SampleSpec("a", 1024, 0.0, 3)
    events: list[str] = []

    async def run() -> None:
        gate = PrefixGate([leader, sharing, alone])

        async def go(spec: SampleSpec, prompt: str, work: float) -> None:
            await gate.wait(_sample(spec, prompt))
            events.append(f"start {spec.seed}")
            await asyncio.sleep(work)
            events.append(f"end {spec.seed}")
            gate.release(spec)

        await asyncio.gather(
            go(leader, haystack + "NEEDLE 1", 0.05),
            go(sharing, haystack[:400] + "NEEDLE 2" + haystack[400:], 0.0),
            go(alone, "NEEDLE 3" + haystack, 0.0),
        )

    asyncio.run(run())
    assert events.index("start 2") > events.index("end 1")  # shares 400 of ~800 characters: waits
    assert events.index("start 3") < events.index("end 1")  # shares nothing: goes at once


def test_a_failed_leader_releases_its_group():
    leader, follower = SampleSpec("a", 512, 1.0, 1), SampleSpec("a", 512, 0.5, 2)

    async def run() -> None:
        gate = PrefixGate([leader, follower])
        gate.release(leader)  # failed before it was built
        await asyncio.wait_for(gate.wait(_sample(follower, "text")), 1)

    asyncio.run(run())

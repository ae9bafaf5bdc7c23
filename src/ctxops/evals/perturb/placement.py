"""``placement``: where things sit: the question before the document, or the needle in a start / middle / end band.

``question-first`` puts the question before the instructions and the document (the answer prefix still follows the
prompt); NIAH tasks only. ``start``, ``middle`` and ``end`` move the first needle into the band 0-20%, 40-60% or
80-100% of the document (Lost in the Middle's U-shape): the clean depth d maps to ``low + 0.2 * d``, so the items
stay spread over the band; every task with a needle position (NIAH, vt, QA). Changes: the question's place, or the
first needle's depth (vt: the chain's first assignment, QA: the gold documents), nothing else.
"""

from __future__ import annotations

import dataclasses

from ctxops.evals.perturb.base import Family, Perturber, niah_only
from ctxops.evals.tasks.base import TaskInfo
from ctxops.evals.tasks.niah import NeedleDoc

BANDS = {"start": 0.0, "middle": 0.4, "end": 0.8}  # the low edge of each band
BAND_WIDTH = 0.2
QUESTION_FIRST = "question-first"


class Placement(Perturber):
    """The question before the document, or the needle in a band."""

    FAMILY = Family.PLACEMENT
    LEVELS = (QUESTION_FIRST, *BANDS)

    @classmethod
    def why_not(cls, task: TaskInfo, level: str) -> str | None:
        if level == QUESTION_FIRST:
            return niah_only(task)
        if not task.uses_depth:
            return f"{task.name} has no needle position"
        return None

    def depth(self, depth: float) -> float:
        if self.level == QUESTION_FIRST:
            return depth
        return round(BANDS[self.level] + BAND_WIDTH * depth, 6)

    def needles(self, doc: NeedleDoc) -> NeedleDoc:
        return dataclasses.replace(doc, question_first=self.level == QUESTION_FIRST)

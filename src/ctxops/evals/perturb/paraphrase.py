"""``paraphrase``: the question asked in other words that keep its meaning (four templates, ``q1`` to ``q4``).

Each template names the value kind and the queried keys exactly as the clean question does, so a reader that
understands the request finds the same needles. Changes: the question sentence only (the answer prefix, the needles
and the document stay).
"""

from __future__ import annotations

import dataclasses

from ctxops.evals.perturb.base import Family, Perturber, niah_only
from ctxops.evals.tasks.base import TaskInfo
from ctxops.evals.tasks.niah import NeedleDoc

TEMPLATES = {
    "q1": "Which special magic {kind} does the text above give for {query}? List every one of them.",
    "q2": "List all the special magic {kind} that the provided text assigns to {query}.",
    "q3": "For {query}, the text hides some special magic {kind}. What are they?",
    "q4": "Tell me the special magic {kind} stated for {query} somewhere in the text.",
}


class Paraphrase(Perturber):
    """The question in other words."""

    FAMILY = Family.PARAPHRASE
    LEVELS = tuple(TEMPLATES)

    @classmethod
    def why_not(cls, task: TaskInfo, level: str) -> str | None:
        return niah_only(task)

    def needles(self, doc: NeedleDoc) -> NeedleDoc:
        return dataclasses.replace(doc, question=TEMPLATES[self.level])

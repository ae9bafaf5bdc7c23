"""``noise``: typos or casing changes in the question (PromptBench's character level), keys and values untouched.

``typos`` gives about a third of the question's words of four or more letters one edit each (two inner letters
swapped, a letter dropped, or a letter doubled); ``casing`` upper-cases, lower-cases or capitalises every word at
random. Words that are part of a queried key (a task's metadata ``query``), and anything with a digit, are never touched, so
the question still names exactly what it asks for. Applies to every task (the question is the prompt's last
paragraph). Changes: the question's letters only.
"""

from __future__ import annotations

import random
import re

from ctxops.evals.perturb.base import Family, Perturber
from ctxops.evals.tasks.base import Rendered

_WORD = re.compile(r"[A-Za-z]+")
TYPO_RATE = 1 / 3


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 2)  # inner letters only: first and last stay
    kind = rng.randrange(3)
    if kind == 0 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[: i + 1] + word[i] + word[i + 1 :]


def _case(word: str, rng: random.Random) -> str:
    return rng.choice((str.upper, str.lower, str.capitalize, str.swapcase))(word)


class Noise(Perturber):
    """Typos or casing changes in the question."""

    FAMILY = Family.NOISE
    LEVELS = ("typos", "casing")

    def text(self, rendered: Rendered) -> Rendered:
        prompt, prefix, metadata = rendered
        cut = prompt.rfind("\n\n") + 2
        question = prompt[cut:]
        protected = {w.lower() for key in metadata.get("query", ()) for w in _WORD.findall(key)}
        spans = [m for m in _WORD.finditer(question) if m.group().lower() not in protected]
        rng = random.Random(self.seed)  # the same edits for every filler count the length search tries
        if self.level == "typos":
            spans = [m for m in spans if len(m.group()) >= 4]
            chosen = rng.sample(spans, max(1, round(TYPO_RATE * len(spans)))) if spans else []
            edit = _typo
        else:
            chosen, edit = spans, _case
        out, last = [], 0
        for m in sorted(chosen, key=lambda m: m.start()):
            out += [question[last : m.start()], edit(m.group(), rng)]
            last = m.end()
        out.append(question[last:])
        return prompt[:cut] + "".join(out), prefix, metadata

"""A perfect reader: answers a built sample from its prompt alone, the way a model that reads perfectly would.

It never looks at ``sample.answers``. NIAH: it finds every needle sentence (the clean wording and the lexical one),
finds the question (the last paragraph, or the first when the question comes first) and answers with the values
of the keys the question names (the lexical question names a city: the reader knows the landmark list, as a model
that knows the world would). vt follows the assignment chain from the value the question names; cwe and fwe count
words in the document. Used by the tests to show every perturbation keeps its answer recoverable.
"""

from __future__ import annotations

import re
from collections import Counter

from ctxops.evals.perturb.lexical import CITY
from ctxops.evals.sample import Sample
from ctxops.evals.tasks import get_task

CLEAN_NEEDLE = re.compile(r"One of the special magic \w+ for (.+?) is: ([\w-]+)\.")
LEXICAL_NEEDLE = re.compile(r"Someone lodging beside (.+?) guards the code ([\w-]+)\.")


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", text.lower()) is not None


def read_niah(prompt: str) -> str:
    paragraphs = prompt.split("\n\n")
    question = paragraphs[-1] if paragraphs[0].startswith("Some special magic") else paragraphs[0]
    needles = CLEAN_NEEDLE.findall(prompt) + [(CITY[k], v) for k, v in LEXICAL_NEEDLE.findall(prompt)]
    return " ".join(value for key, value in needles if _mentions(question, key))


def read_vt(prompt: str) -> str:
    task = prompt.split("\n\n")[-2:]  # the document and the question, after the worked example
    value = re.search(r"\d{5}", task[1]).group()
    names = set(re.findall(rf"VAR (\w+) = {value}\.", task[0]))
    while True:
        more = {n for n, src in re.findall(r"VAR (\w+) = VAR (\w+)\.", task[0]) if src in names} - names
        if not more:
            return " ".join(sorted(names))
        names |= more


def read_cwe(prompt: str) -> str:
    document = prompt.split("\n\n")[-2]
    return " ".join(w for w, _ in Counter(re.findall(r"\d+\. (\S+)", document)).most_common(10))


def read_fwe(prompt: str) -> str:
    document = prompt.split("\n\n")[-2]
    return " ".join(w for w, _ in Counter(w for w in document.split() if w != "...").most_common(3))


READERS = {
    "niah": read_niah,
    "variable_tracking": read_vt,
    "common_words": read_cwe,
    "frequent_words": read_fwe,
}


def perfect_answer(sample: Sample) -> str:
    """The answer a perfect reader gives to ``sample``."""
    return READERS[get_task(sample.spec.task).family](sample.prompt)

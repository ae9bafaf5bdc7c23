"""``format``: the needle's value as digits, words or a UUID; the key as a person's name, a phrase or a code.

``value-digits`` / ``value-words`` / ``value-uuid`` redraw every needle's values in that format (7-digit numbers,
adjective-noun words as RULER's word values, UUIDs) and name them accordingly ("special magic numbers / words /
uuids", as RULER does). ``key-name`` (``Ilse Varga``), ``key-phrase`` (``the quiet lantern by the river``) and
``key-code`` (``KX-4471``) redraw every key. A level equal to the task's own format is the clean item, so it does
not apply. Changes: the values (and their name) or the keys, nowhere else; the needle and question templates stay.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Callable

from ctxops.evals import words
from ctxops.evals.perturb.base import Family, Perturber, needle_setup, niah_in_haystack
from ctxops.evals.tasks.base import TaskInfo
from ctxops.evals.tasks.niah import NeedleDoc, Value, make_word

FIRST_NAMES = (
    "Ilse", "Tomas", "Amara", "Jonah", "Priya", "Mateo", "Freya", "Kenji", "Leila", "Oskar", "Nadia", "Rafael",
    "Sunniva", "Idris", "Mireille", "Tobias", "Ayesha", "Caspian", "Elif", "Dmitri", "Yara", "Lucian", "Wren",
    "Farid", "Greta", "Hugo", "Imani", "Joaquin", "Katya", "Linus",
)  # fmt: skip
SURNAMES = (
    "Varga", "Okafor", "Lindqvist", "Moreau", "Takeda", "Castillo", "Brennan", "Haddad", "Novak", "Achebe",
    "Fitzgerald", "Kowalski", "Ishikawa", "Delacroix", "Mbeki", "Sorensen", "Quintero", "Albescu", "Whitlock",
    "Zeller", "Ferreira", "Nakamura", "Osei", "Petrov", "Rinaldi", "Strand", "Tanaka", "Ulloa", "Vance", "Weiss",
)  # fmt: skip


def name_key(rng: random.Random) -> str:
    """A person's name such as ``Ilse Varga``."""
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"


def phrase_key(rng: random.Random) -> str:
    """A noun phrase such as ``the quiet lantern by the river``."""
    return f"the {rng.choice(words.ADJECTIVES)} {rng.choice(words.NOUNS)} by the {rng.choice(words.NOUNS)}"


def code_key(rng: random.Random) -> str:
    """A code such as ``KX-4471``: two capitals, a hyphen, four digits."""
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(2))
    return f"{letters}-{rng.randint(1000, 9999)}"


VALUES: dict[str, Value] = {"value-digits": Value.NUMBER, "value-words": Value.WORD, "value-uuid": Value.UUID}
KEYS: dict[str, Callable[[random.Random], str]] = {"key-name": name_key, "key-phrase": phrase_key,
                                                   "key-code": code_key}  # fmt: skip


class Format(Perturber):
    """The values or the keys redrawn in another format."""

    FAMILY = Family.FORMAT
    LEVELS = (*VALUES, *KEYS)

    @classmethod
    def why_not(cls, task: TaskInfo, level: str) -> str | None:
        reason = niah_in_haystack(task, "they keep the clean format, so the real needle would stand out")
        value = needle_setup(task).value if reason is None else None
        if value is not None and VALUES.get(level) is value:
            return f"{task.name}'s values already are {value.value}"
        return reason

    def needles(self, doc: NeedleDoc) -> NeedleDoc:
        rng = self.rng
        if self.level in VALUES:
            kind = VALUES[self.level]
            old = list(dict.fromkeys(v for _, _, v in doc.needles))
            new = dict(zip(old, words.distinct(make_word(kind), rng, len(old)), strict=True))
            needles = tuple((d, k, new[v]) for d, k, v in doc.needles)
            return dataclasses.replace(doc, kind=kind.value, needles=needles)
        old = list(dict.fromkeys(k for _, k, _ in doc.needles))
        new = dict(zip(old, words.distinct(KEYS[self.level], rng, len(old)), strict=True))
        needles = tuple((d, new[k], v) for d, k, v in doc.needles)
        return dataclasses.replace(doc, needles=needles, queried=tuple(new[k] for k in doc.queried))

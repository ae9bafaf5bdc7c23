"""``distractors``: near-miss needles beside the real ones, 2, 8 or 32 of them (the clean item is level 0).

A near-miss needle has the queried key one edit away (one letter, digit or hex character replaced by another of the
same kind, so ``quiet-lantern`` may become ``quiet-lanturn``) and a value of the same format as the real one, in the
same needle sentence; they go at random depths. No near-miss key equals a real key, no value equals a real value,
so the answer stays recoverable by reading the key exactly. Changes: extra needles only (the filler they displace
keeps the prompt within its length).
"""

from __future__ import annotations

import dataclasses
import random
import string

from ctxops.evals.perturb.base import Family, Perturber, niah_only
from ctxops.evals.tasks.base import TaskInfo
from ctxops.evals.tasks.niah import NeedleDoc, Value, make_word

_CLASSES = (string.digits, string.ascii_lowercase, string.ascii_uppercase)


def one_edit(key: str, rng: random.Random) -> str:
    """``key`` with one character replaced by a different one of the same class (digit, lower, upper)."""
    positions = [i for i, ch in enumerate(key) if ch.isalnum()]
    i = rng.choice(positions)
    pool = next(c for c in _CLASSES if key[i] in c)
    if set(key.lower()) <= set("0123456789abcdef-") and key[i] in string.ascii_lowercase:
        pool = "abcdef"  # a UUID stays a UUID
    return key[:i] + rng.choice(pool.replace(key[i], "")) + key[i + 1 :]


class Distractors(Perturber):
    """Near-miss needles beside the real ones."""

    FAMILY = Family.DISTRACTORS
    LEVELS = ("2", "8", "32")

    @classmethod
    def why_not(cls, task: TaskInfo, level: str) -> str | None:
        return niah_only(task)

    def needles(self, doc: NeedleDoc) -> NeedleDoc:
        make_value = make_word(Value(doc.kind))
        real_keys = {k for _, k, _ in doc.needles}
        values = {v for _, _, v in doc.needles}
        keys: set[str] = set()
        extra = []
        for i in range(int(self.level)):
            target = doc.queried[i % len(doc.queried)]
            key = one_edit(target, self.rng)
            while key in real_keys or key in keys:
                key = one_edit(target, self.rng)
            value = make_value(self.rng)
            while value in values:
                value = make_value(self.rng)
            keys.add(key)
            values.add(value)
            extra.append((self.rng.random(), doc.sentence(key, value)))
        return dataclasses.replace(doc, extra=doc.extra + tuple(extra))

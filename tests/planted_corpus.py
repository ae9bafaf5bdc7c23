"""Planted contamination: eval passages copied into a corpus exactly, with word edits, or deep in a long document.

Every passage and all background text come from ctxops' own prose grammar, so clean passages and background share
vocabulary and phrasing: the hard case for false positives. Used by tests/data/test_contamination.py.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ctxops.evals.prose import prose_sentences

EDIT_RATES = (0.05, 0.10, 0.15, 0.20)


def prose_words(seed: int, count: int) -> list[str]:
    out: list[str] = []
    rng = random.Random(seed)
    while len(out) < count:
        out += " ".join(prose_sentences(rng, 20)).split()
    return out[:count]


def edit(words: list[str], rate: float, rng: random.Random, vocabulary: list[str]) -> list[str]:
    """Edit ``rate`` of the words: 60% substituted, 20% followed by an inserted word, 20% deleted."""
    out = list(words)
    for i in rng.sample(range(len(out)), round(rate * len(out))):
        op = rng.random()
        if op < 0.6:
            out[i] = rng.choice(vocabulary)
        elif op < 0.8:
            out[i] = f"{out[i]} {rng.choice(vocabulary)}"
        else:
            out[i] = ""
    return " ".join(out).split()


@dataclass
class PlantedSet:
    items: Path  # JSONL of {id, task, text}
    corpus: Path  # JSONL of {id, text}
    planted: dict[str, list[str]] = field(default_factory=dict)  # kind -> item ids
    negatives: list[str] = field(default_factory=list)


def make_planted(
    root: Path,
    per_kind: int,
    negatives: int,
    passage_words: int = 150,
    buried_doc_words: int = 50_000,
    seed: int = 0,
) -> PlantedSet:
    """Items and a corpus with ``per_kind`` items of each kind planted and ``negatives`` items never planted."""
    rng = random.Random(seed)
    vocabulary = sorted(set(prose_words(999_999, 5000)))
    kinds = ["exact", *(f"edit{round(r * 100)}" for r in EDIT_RATES), "buried"]
    total = per_kind * len(kinds) + negatives
    passages = {f"p{i:05d}": prose_words(seed * 100_000 + i, passage_words) for i in range(total)}
    ids = list(passages)
    result = PlantedSet(root / "items.jsonl", root / "corpus.jsonl")
    with result.items.open("w") as handle:
        for item_id, words in passages.items():
            handle.write(json.dumps({"id": item_id, "task": "passages", "text": " ".join(words)}) + "\n")
    docs: list[str] = []
    background = iter(range(10_000_000 + seed * 100_000, 20_000_000))
    for k, kind in enumerate(kinds):
        chosen = ids[k * per_kind : (k + 1) * per_kind]
        result.planted[kind] = chosen
        for item_id in chosen:
            words = passages[item_id]
            if kind.startswith("edit"):
                words = edit(words, int(kind[4:]) / 100, rng, vocabulary)
            size = buried_doc_words if kind == "buried" else 2000
            host = prose_words(next(background), size)
            at = rng.randrange(len(host) + 1)
            docs.append(" ".join(host[:at] + words + host[at:]))
    result.negatives = ids[len(kinds) * per_kind :]
    for _ in range(max(1, negatives // 10)):  # clean background documents too
        docs.append(" ".join(prose_words(next(background), 2000)))
    rng.shuffle(docs)
    with result.corpus.open("w") as handle:
        for i, text in enumerate(docs):
            handle.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return result

"""Structural self-check of the blind set (bench/guard_corpus_blind.py); runs no detector on it.

Asserts only facts about the generated documents: the set has the eight families of ``guard_corpus.ATTACKS`` with at
least 8 templates each, every template varies with its random slots, the benign kinds are new, generation is
deterministic by seed, every attack span lies inside its document and holds exactly the attack text, benign
documents have no span, and document lengths fall in the range of the sealed set's. It does not know (and must not
be used to find out) how the detector scores the set: ``guard_quality.py --sets blind`` does that, once.

    python bench/guard_corpus_blind_check.py [--attacked 48] [--benign 48] [--seed 17]
"""

from __future__ import annotations

import argparse
import random
import sys
import unicodedata
from collections.abc import Iterator

from guard_corpus import ATTACKS, BENIGN, DEV3, HELD_OUT, SEEN, document
from guard_corpus_blind import BLIND_ATTACKS, BLIND_BENIGN, blind_rng
from guard_corpus_sealed import SEALED_ATTACKS, SEALED_BENIGN, sealed_rng

DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)  # as guard_quality.DEPTHS
OLDER_KINDS = {"support_article", "ml_paper_notes", "meeting_notes", "game_guide"} | set(BENIGN)
INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}

Doc = tuple[str, str, float | None, str, tuple[int, int] | None, str | None]


def generate(num_attacked: int, num_benign: int, attacks, snippets, rng: random.Random) -> Iterator[Doc]:
    """The same walk as guard_quality.labeled_set, also yielding each attack's text."""
    families, kinds = list(ATTACKS), list(snippets)
    for i in range(num_benign):
        kind = kinds[i % len(kinds)]
        text, span = document(rng, kind, None, snippets=snippets)
        yield "benign", kind, None, text, span, None
    for i in range(num_attacked):
        family = families[i % len(families)]
        depth = DEPTHS[(i // len(families)) % len(DEPTHS)]
        attack = rng.choice(attacks[family])(rng)
        text, span = document(rng, kinds[i % len(kinds)], (depth, attack), snippets=snippets)
        yield "attacked", family, depth, text, span, attack


def check_templates() -> None:
    assert list(BLIND_ATTACKS) == list(ATTACKS), "the blind set must have the eight families, in order"
    older = {t(random.Random(s)) for d in (ATTACKS, SEEN, HELD_OUT, DEV3, SEALED_ATTACKS) for ts in d.values()
             for t in ts for s in range(20)}  # fmt: skip
    for family, templates in BLIND_ATTACKS.items():
        assert len(templates) >= 8, f"{family}: {len(templates)} templates, want at least 8"
        for n, template in enumerate(templates):
            outputs = {template(random.Random(s)) for s in range(40)}
            assert all(isinstance(o, str) and o.strip() for o in outputs), f"{family}[{n}] gave an empty text"
            assert len(outputs) >= 2, f"{family}[{n}] has no slot variation"
            assert not outputs & older, f"{family}[{n}] repeats a text of an older set"
            if family == "invisible":
                for o in outputs:
                    assert any(0xE0000 <= ord(c) <= 0xE007F or c in INVISIBLE for c in o), o
    scripts = {
        unicodedata.name(c).split()[0]
        for t in BLIND_ATTACKS["other_language"]
        for c in t(random.Random(0))
        if c.isalpha()
    }
    assert len(BLIND_ATTACKS["other_language"]) >= 8
    assert len(scripts - {"LATIN"}) >= 5, f"other_language scripts: {sorted(scripts)}"
    assert len(BLIND_BENIGN) >= 6, "want at least 6 benign kinds"
    assert not set(BLIND_BENIGN) & OLDER_KINDS, "benign kinds must be new"
    older_snippets = {s for d in (BENIGN, SEALED_BENIGN) for ss in d.values() for s in ss}
    for kind, snippets in BLIND_BENIGN.items():
        assert len(snippets) >= 8 and len(set(snippets)) == len(snippets), kind
        assert not set(snippets) & older_snippets, kind


def check_documents(num_attacked: int, num_benign: int, seed: int) -> list[int]:
    def run(s: int) -> list[Doc]:
        return list(generate(num_attacked, num_benign, BLIND_ATTACKS, BLIND_BENIGN, blind_rng(s)))

    docs = run(seed)
    assert docs == run(seed), "the blind set is not deterministic by seed"
    assert [d[3] for d in docs] != [d[3] for d in run(seed + 1)], "another seed gives the same documents"
    families, depths = set(), set()
    for label, group, depth, text, span, attack in docs:
        if label == "benign":
            assert span is None and attack is None, f"benign {group} document has a span"
            continue
        assert span is not None and attack is not None
        start, end = span
        assert 0 <= start < end <= len(text), f"{group}: span {span} outside a {len(text)}-char document"
        assert text[start:end] == attack, f"{group}: the span does not hold the attack text"
        families.add(group)
        depths.add(depth)
    if num_attacked >= len(ATTACKS) * len(DEPTHS):
        assert families == set(ATTACKS) and depths == set(DEPTHS), (families, depths)
    return [len(d[3]) for d in docs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacked", type=int, default=48)
    parser.add_argument("--benign", type=int, default=48)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args(argv)
    check_templates()
    blind = check_documents(args.attacked, args.benign, args.seed)
    sealed = [
        len(d[3])
        for d in generate(args.attacked, args.benign, SEALED_ATTACKS, SEALED_BENIGN, sealed_rng(args.seed))
    ]
    low, high = 0.9 * min(sealed), 1.1 * max(sealed)
    assert all(low <= n <= high for n in blind), (min(blind), max(blind), low, high)
    counts = {f: len(t) for f, t in BLIND_ATTACKS.items()}
    print(f"templates per family: {counts} (total {sum(counts.values())})")
    print(f"benign kinds: {', '.join(f'{k} ({len(v)})' for k, v in BLIND_BENIGN.items())}")
    print(
        f"documents: {len(blind)}, chars {min(blind):,}-{max(blind):,} (sealed {min(sealed):,}-{max(sealed):,})"
    )
    print("ok: structure, determinism, spans, benign without span, lengths")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A generator of plausible, license-clean English prose: the default "essay" haystack.

The sentences come from a small hand-written grammar (openers, subjects, verbs, objects, endings), so the text is
ours to ship and never runs out. It reads like a meandering essay about work, towns and ideas, which is what a
needle has to hide in. Deterministic for a given ``random.Random``. This module knows sentences, not tokens.
"""

from __future__ import annotations

import random

_OPENERS = (
    "", "", "", "In the early years, ", "For a long time, ", "Sooner or later, ", "By the end of the decade, ",
    "Looking back, ", "At first, ", "In practice, ", "Most of the time, ", "Every spring, ", "Even so, ",
    "Over the following winter, ", "As the town grew, ", "Strangely enough, ", "In the end, ", "Now and then, ",
)  # fmt: skip
_SUBJECTS = (
    "the old harbor master", "a young engineer", "the village council", "my grandmother", "the night watchman",
    "a traveller from the north", "the printing shop", "most of the farmers", "the schoolteacher", "our neighbours",
    "the river pilot", "a quiet carpenter", "the committee", "the bakers on the corner", "a stubborn inventor",
    "the library", "the orchestra", "a small team of surveyors", "the ferry company", "the weaver's apprentice",
    "the mayor", "the people who built the canal", "a visiting painter", "the tailor", "the clockmaker",
)  # fmt: skip
_VERBS = (
    "kept", "rebuilt", "studied", "questioned", "ignored", "carried", "repaired", "sold", "measured", "praised",
    "borrowed", "described", "argued about", "planned", "forgot", "defended", "copied", "collected", "tested",
    "mapped", "painted", "counted", "moved", "celebrated", "replaced",
)  # fmt: skip
_OBJECTS = (
    "the bridge over the river", "a ledger of every shipment", "the long road to the coast", "the old mill",
    "a box of letters", "the plans for a new school", "the price of grain", "the lighthouse lamp",
    "a map of the valley", "the rules of the market", "the tower clock", "a garden behind the chapel",
    "the stories of the first settlers", "a set of brass instruments", "the roof of the town hall",
    "the habits of the river birds", "the recipe for winter bread", "a cart full of timber", "the harbor walls",
    "the path through the forest", "a collection of pressed flowers", "the records of the guild",
)  # fmt: skip
_ENDINGS = (
    "", "", "", " with great care", " without telling anyone", " for nearly twenty years", " after the flood",
    " before the first snow", " in the hope of a better harvest", " because nobody else would",
    " as if nothing had happened", " long after the others had left", " every single morning",
    " against all advice", " while the town slept", " for reasons nobody remembers",
)  # fmt: skip
_REFLECTIONS = (
    "It is easy to forget how much patience that required.",
    "Nobody at the time thought it was remarkable.",
    "That, more than anything, shaped the character of the place.",
    "The lesson seems obvious now, but it was not obvious then.",
    "Some of those habits survive to this day.",
    "People still argue about whether it was worth the effort.",
    "What mattered was not the result but the habit of trying.",
    "Small decisions like that add up over a lifetime.",
    "The details were written down, though few people read them.",
    "It was, in its own way, a kind of quiet progress.",
    "Good work tends to look simple from the outside.",
    "There is a difference between being busy and being useful.",
)  # fmt: skip
_CLAUSES = (
    "because the roads were closed", "although the money had run out", "so that the children could learn",
    "when the weather finally turned", "until the river rose again", "even though the rain never stopped",
    "since nobody trusted the old maps", "before anyone could object",
)  # fmt: skip


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


def prose_sentence(rng: random.Random) -> str:
    """One sentence of the grammar, ending in a full stop."""
    form = rng.random()
    if form < 0.15:
        return rng.choice(_REFLECTIONS)
    subject, verb, obj = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
    if form < 0.35:
        return _capitalize(f"{subject} {verb} {obj} {rng.choice(_CLAUSES)}.")
    if form < 0.45:
        other = rng.choice(_SUBJECTS)
        return _capitalize(f"{subject} {verb} {obj}, and {other} {rng.choice(_VERBS)} it too.")
    return _capitalize(f"{rng.choice(_OPENERS)}{subject} {verb} {obj}{rng.choice(_ENDINGS)}.")


def prose_sentences(rng: random.Random, count: int) -> list[str]:
    """``count`` sentences, in paragraphs of 4 to 8 (a paragraph's last sentence ends with a blank line)."""
    out: list[str] = []
    left_in_paragraph = rng.randint(4, 8)
    for _ in range(count):
        sentence = prose_sentence(rng)
        left_in_paragraph -= 1
        if left_in_paragraph == 0:
            sentence += "\n"
            left_in_paragraph = rng.randint(4, 8)
        out.append(sentence)
    return out

"""``lexical``: the question and the needle share no content word (NoLiMa-style); finding the needle takes a fact.

Each key becomes a landmark, and the question asks for the city the landmark stands in: the needle says "Someone
lodging beside the Semper Opera House guards the code 4721935." and the question "Which numbers belong to whoever has
been to Dresden?". A reader must know that the Semper Opera House is in Dresden; matching words finds nothing.

The associations (:data:`ASSOCIATIONS`) are ours: 40 landmarks, each in one city, chosen so that the landmark's name
does not contain its city's name or any word of the question templates, and no two landmarks share a city. They are
widely known facts (a tourist's guidebook level), so a model that knows the world and reads the whole context can
answer; a model that matches strings cannot.

Decoys: a single-needle item would hold one landmark sentence with the only seven-digit number in the text, which a
model can copy without making the hop. So every item carries at least :data:`DECOYS` landmark needles that are not
asked for: the task's own unqueried keys (niah_multikey_1 has three) count, and decoys make up the rest, each a
landmark of another city (no two landmarks share a city, so no decoy answers the question) with as many values as a
real key, of the same format, none equal to a real value, at seeded random depths. Only the landmark-to-city
association tells the asked needle from the decoys.

Levels: ``landmark`` (the only one). Changes: the keys (to landmarks), the needle sentence, the question, the
answer prefix (which would otherwise repeat the key) and the decoy needles (which displace filler); values, depths
of the real needles and the rest of the document stay.
"""

from __future__ import annotations

import dataclasses

from ctxops.evals.perturb.base import Family, Perturber, niah_in_haystack
from ctxops.evals.tasks.base import TaskInfo
from ctxops.evals.tasks.niah import NeedleDoc, Value, make_word

ASSOCIATIONS: tuple[tuple[str, str], ...] = (
    ("the Semper Opera House", "Dresden"), ("the Eiffel Tower", "Paris"), ("the Colosseum", "Rome"),
    ("the Brandenburg Gate", "Berlin"), ("the Sagrada Familia", "Barcelona"), ("the Acropolis", "Athens"),
    ("the Hagia Sophia", "Istanbul"), ("the Space Needle", "Seattle"), ("the Petronas Towers", "Kuala Lumpur"),
    ("the Burj Khalifa", "Dubai"), ("the Temple of Heaven", "Beijing"), ("the Fushimi Inari shrine", "Kyoto"),
    ("the Senso-ji temple", "Tokyo"), ("the Charles Bridge", "Prague"), ("the Atomium", "Brussels"),
    ("the Rijksmuseum", "Amsterdam"), ("the Alhambra", "Granada"), ("the Prado museum", "Madrid"),
    ("the Uffizi gallery", "Florence"), ("the Rialto Bridge", "Venice"), ("Big Ben", "London"),
    ("Table Mountain", "Cape Town"), ("the Gateway of India", "Mumbai"), ("the Taj Mahal", "Agra"),
    ("the Marina Bay Sands hotel", "Singapore"), ("the CN Tower", "Toronto"), ("the Statue of Liberty", "New York"),
    ("the Hollywood sign", "Los Angeles"), ("the Gateway Arch", "St. Louis"), ("Holyrood Palace", "Edinburgh"),
    ("Schonbrunn Palace", "Vienna"), ("Wawel Castle", "Krakow"), ("the Obelisco", "Buenos Aires"),
    ("the Sugarloaf cable car", "Rio de Janeiro"), ("the Harbour Bridge", "Sydney"), ("the Vasa Museum", "Stockholm"),
    ("the Belem Tower", "Lisbon"), ("the Potala Palace", "Lhasa"), ("the Bund waterfront", "Shanghai"),
    ("the Wat Arun temple", "Bangkok"),
)  # fmt: skip
CITY = dict(ASSOCIATIONS)
NEEDLE = "Someone lodging beside {key} guards the code {value}."
QUESTION = "Which {kind} belong to whoever has been to {query}?"
ANSWER_PREFIX = "The {kind} of whoever has been to {query} are"
DECOYS = 3  # landmark needles per item that the question does not ask for (unqueried keys + decoys)


class Lexical(Perturber):
    """Keys become landmarks; the question names their cities."""

    FAMILY = Family.LEXICAL
    LEVELS = ("landmark",)

    @classmethod
    def why_not(cls, task: TaskInfo, level: str) -> str | None:
        return niah_in_haystack(task, "they keep the clean wording, so the real needle would stand out")

    def needles(self, doc: NeedleDoc) -> NeedleDoc:
        keys = list(dict.fromkeys(k for _, k, _ in doc.needles))
        landmarks = dict(zip(keys, (a for a, _ in self.rng.sample(ASSOCIATIONS, len(keys))), strict=True))
        out = dataclasses.replace(
            doc,
            needles=tuple((d, landmarks[k], v) for d, k, v in doc.needles),
            queried=tuple(landmarks[k] for k in doc.queried),
            asked_as=tuple(CITY[landmarks[k]] for k in doc.queried),
            needle_template=NEEDLE,
            question=QUESTION,
            prefix=ANSWER_PREFIX,
        )
        return dataclasses.replace(out, extra=doc.extra + self._decoys(out, len(keys)))

    def _decoys(self, doc: NeedleDoc, num_keys: int) -> tuple[tuple[float, str], ...]:
        """(depth, sentence) of the decoy needles ``doc`` needs to hold :data:`DECOYS` unasked landmarks."""
        count = max(0, DECOYS - (num_keys - len(doc.queried)))
        used = {k for _, k, _ in doc.needles}
        free = [a for a, _ in ASSOCIATIONS if a not in used]  # in list order, so the draw is stable
        per_key = len(doc.needles) // num_keys  # values per key: 4 for niah_multivalue, else 1
        make_value = make_word(Value(doc.kind))
        values = {v for _, _, v in doc.needles}
        out = []
        for landmark in self.rng.sample(free, count):
            for _ in range(per_key):
                value = make_value(self.rng)
                while value in values:
                    value = make_value(self.rng)
                values.add(value)
                out.append((self.rng.random(), doc.sentence(landmark, value)))
        return tuple(out)

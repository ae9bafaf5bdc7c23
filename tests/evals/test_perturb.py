from __future__ import annotations

import re

import pytest

from ctxops.evals import perturb
from ctxops.evals.config import EvalConfig
from ctxops.evals.perturb import PerturbError, expand
from ctxops.evals.perturb.distractors import one_edit
from ctxops.evals.perturb.lexical import ASSOCIATIONS, CITY, DECOYS
from ctxops.evals.perturb.lexical import QUESTION as LEXICAL_QUESTION
from ctxops.evals.sample import SampleSpec
from ctxops.evals.tasks import build_sample
from evals.perfect_reader import CLEAN_NEEDLE, LEXICAL_NEEDLE, perfect_answer

LENGTH = 2048
TASKS = ["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2",
         "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe"]  # fmt: skip
STOPWORDS = {"the", "a", "an", "to", "of", "has", "been", "which", "whoever", "someone", "is", "are", "who"}


def build(task, variant="", seed=5, depth=0.3, counter=None, length=LENGTH):
    spec = SampleSpec(task, length, depth, seed, variant)
    return build_sample(
        task, length, depth, seed, counter, variant=variant, perturbation=perturb.perturbation(spec)
    )


def question(sample) -> str:
    return sample.prompt[sample.prompt.rfind("\n\n") + 2 :]


@pytest.mark.parametrize("task", TASKS)
def test_a_perfect_reader_scores_1_on_every_variant_within_the_length(task, counter):
    variants = ("", *expand("all", [task])[task])
    assert len(variants) > 2
    length = (
        4096 if task.endswith("_3") else LENGTH
    )  # 32 UUID needles take ~2.3K tokens of the test tokenizer
    for variant in variants:
        sample = build(task, variant, counter=counter, length=length)
        assert sample.spec.variant == variant
        assert sample.score_output(perfect_answer(sample)) == 1.0, (
            variant,
            perfect_answer(sample),
            sample.answers,
        )
        assert counter(sample.prompt, sample.answer_prefix) == sample.input_tokens
        assert sample.total_tokens <= length, variant


@pytest.mark.parametrize("variant", ["distractors=8", "format=key-code", "haystack=code", "noise=typos",
                                     "placement=middle", "lexical=landmark", "paraphrase=q3"])  # fmt: skip
def test_variants_are_deterministic_by_seed_and_keep_the_clean_draw(variant, counter):
    a, b = (
        build("niah_multikey_1", variant, counter=counter),
        build("niah_multikey_1", variant, counter=counter),
    )
    assert a.prompt_hash == b.prompt_hash
    assert build("niah_multikey_1", variant, seed=6, counter=counter).prompt != a.prompt
    clean = build("niah_multikey_1", counter=counter)
    assert a.prompt != clean.prompt
    if not variant.startswith(("format", "lexical")):  # the same keys and values as the clean twin
        assert a.answers == clean.answers and a.metadata["keys"] == clean.metadata["keys"]


def test_distractors_add_only_near_miss_needles(counter):
    clean = build("niah_single_2", counter=counter)
    for level in (2, 8, 32):
        sample = build("niah_single_2", f"distractors={level}", counter=counter)
        found = dict(CLEAN_NEEDLE.findall(sample.prompt))
        key = clean.metadata["query"][0]
        near = {k: v for k, v in found.items() if k != key}
        assert len(near) == level and found[key] == clean.answers[0]
        assert all(len(k) == len(key) and sum(x != y for x, y in zip(k, key, strict=True)) == 1 for k in near)
        assert all(re.fullmatch(r"\d{7}", v) for v in near.values())  # the same format as the real value
        assert question(sample) == question(clean) and sample.answer_prefix == clean.answer_prefix
        assert sample.metadata["needles"] == clean.metadata["needles"]


def test_one_edit_keeps_the_character_class():
    import random

    rng = random.Random(0)
    for key in ("quiet-lantern", "9b1de2a0-55f3-4c1d-8e2a-0b6c77d1e0f4", "KX-4471"):
        edited = one_edit(key, rng)
        diff = [(x, y) for x, y in zip(key, edited, strict=True) if x != y]
        assert len(diff) == 1 and diff[0][0].isdigit() == diff[0][1].isdigit()


def test_format_changes_only_the_keys_or_values(counter):
    clean = build("niah_single_1", counter=counter)
    words = build("niah_single_1", "format=value-words", counter=counter)
    assert re.fullmatch(r"[a-z]+-[a-z]+", words.answers[0]) and "magic words" in question(words)
    assert words.metadata["keys"] == clean.metadata["keys"]
    uuid = build("niah_single_1", "format=value-uuid", counter=counter)
    assert re.fullmatch(r"[0-9a-f-]{36}", uuid.answers[0])
    code = build("niah_single_1", "format=key-code", counter=counter)
    assert re.fullmatch(r"[A-Z]{2}-\d{4}", code.metadata["keys"][0]) and code.answers == clean.answers
    assert question(code) == question(clean).replace(clean.metadata["keys"][0], code.metadata["keys"][0])
    assert code.metadata["needle_depths"] == clean.metadata["needle_depths"]


def test_paraphrase_and_noise_change_only_the_question(counter):
    clean = build("niah_single_2", counter=counter)
    for variant in ("paraphrase=q1", "paraphrase=q4", "noise=typos", "noise=casing"):
        sample = build("niah_single_2", variant, counter=counter)
        assert sample.answer_prefix == clean.answer_prefix and sample.answers == clean.answers
        assert sample.metadata["needles"] == clean.metadata["needles"]
        assert question(sample) != question(clean)
        assert clean.metadata["query"][0] in question(sample)  # the key is never touched
    casing = build("niah_single_2", "noise=casing", counter=counter)
    assert question(casing).lower() == question(clean).lower()
    typos = question(build("niah_single_2", "noise=typos", counter=counter)).split()
    assert len(typos) == len(question(clean).split())


def content(text):
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS}


def test_lexical_question_shares_no_content_word_with_its_needle(counter):
    sample = build("niah_single_2", "lexical=landmark", counter=counter)
    [needle] = sample.metadata["needles"]
    [(landmark, value)] = LEXICAL_NEEDLE.findall(needle)
    assert sample.answers == (value,)
    assert not content(needle) & content(question(sample))
    for place, city in ASSOCIATIONS:  # the whole list: no landmark names its city or a word of the question
        assert not content(f"Someone lodging beside {place} guards the code") & content(
            LEXICAL_QUESTION.format(kind="numbers uuids", query=city)
        ), place
    assert len({c for _, c in ASSOCIATIONS}) == len(ASSOCIATIONS)


@pytest.mark.parametrize(
    ("task", "decoys", "values_each"),
    [("niah_single_1", 3, 1), ("niah_single_3", 3, 1), ("niah_multikey_1", 0, 1), ("niah_multivalue", 3, 4),
     ("niah_multiquery", 3, 1)],
)  # fmt: skip
def test_lexical_decoys_leave_only_the_association_to_pick_the_needle(task, decoys, values_each, counter):
    length = 4096 if task.endswith("_3") else LENGTH
    sample = build(task, "lexical=landmark", counter=counter, length=length)
    found = LEXICAL_NEEDLE.findall(sample.prompt)
    real = [LEXICAL_NEEDLE.findall(n)[0] for n in sample.metadata["needles"]]
    extra = [pair for pair in found if pair not in real]
    assert len({landmark for landmark, _ in extra}) == decoys and len(extra) == decoys * values_each
    unasked = {lm for lm, _ in found} - set(sample.metadata["query"])
    assert len(unasked) >= DECOYS
    asked = question(sample)
    assert not any(CITY[lm] in asked for lm in unasked)  # no decoy answers the question
    values = [v for _, v in found]
    assert len(set(values)) == len(values)
    shape = r"\d{7}" if not task.endswith("_3") else r"[0-9a-f-]{36}"
    assert all(re.fullmatch(shape, v) for _, v in extra)  # the real values' format
    assert not content(" ".join(sample.metadata["needles"])) & content(asked)


def test_lexical_cannot_be_passed_by_copying_a_landmark_number(counter):
    """A reader that skips the hop (the first landmark needle's number) fails most items; the perfect reader none."""
    copied, perfect = [], []
    for seed in range(20):
        sample = build(
            "niah_single_1", "lexical=landmark", seed=seed, depth=seed / 19, counter=counter, length=1024
        )
        copied.append(sample.score_output(LEXICAL_NEEDLE.findall(sample.prompt)[0][1]))
        perfect.append(sample.score_output(perfect_answer(sample)))
    assert sum(perfect) == 20 and sum(copied) <= 10


def test_haystack_and_placement_change_only_what_they_claim(counter):
    clean = build("niah_single_1", counter=counter)
    code = build("niah_single_1", "haystack=code", counter=counter)
    assert "def " in code.prompt and "The grass is green." not in code.prompt
    assert question(code) == question(clean) and code.metadata["needles"] == clean.metadata["needles"]
    assert "{" in build("niah_single_1", "haystack=logs", counter=counter).prompt
    assert " el " in build("niah_single_1", "haystack=spanish", counter=counter).prompt.lower()
    for band, (low, high) in {"start": (0, 0.2), "middle": (0.4, 0.6), "end": (0.8, 1.0)}.items():
        sample = build("niah_single_1", f"placement={band}", counter=counter)
        assert low <= sample.metadata["needle_depths"][0] <= high
        assert sample.spec.depth == clean.spec.depth and question(sample) == question(clean)
    first = build("niah_single_1", "placement=question-first", counter=counter)
    assert first.prompt.startswith(question(clean)) and first.answer_prefix == clean.answer_prefix


QUESTION_SIDE = ["paraphrase", "lexical", "noise", "placement"]
APPLIES = {  # the README's table: which families each task takes under --perturb all
    "niah_single_1": "distractors format paraphrase lexical haystack placement noise",
    "niah_multikey_1": "distractors format paraphrase lexical haystack placement noise",
    "niah_multivalue": "distractors format paraphrase lexical haystack placement noise",
    "niah_multiquery": "distractors format paraphrase lexical haystack placement noise",
    "niah_multikey_2": "distractors paraphrase placement noise",
    "niah_multikey_3": "distractors paraphrase placement noise",
    "vt": "placement noise",
    "cwe": "noise",
    "fwe": "noise",
}


@pytest.mark.parametrize("task", list(APPLIES))
def test_which_families_apply_to_which_tasks(task):
    assert perturb.families_for(task) == APPLIES[task].split()


@pytest.mark.parametrize("task", ["niah_multikey_1", "niah_multikey_2", "niah_multivalue", "niah_multiquery"])
def test_question_side_families_on_multi_key_tasks_ask_for_the_same_needles(task, counter):
    clean = build(task, counter=counter)
    for variant in expand(",".join(f for f in QUESTION_SIDE if f in APPLIES.get(task, "")), [task])[task]:
        sample = build(task, variant, counter=counter)
        if variant.startswith("lexical"):  # keys become landmarks; the values and their order stay
            assert sample.answers == clean.answers and len(sample.metadata["query"]) == len(
                clean.metadata["query"]
            )
            continue
        assert sample.answers == clean.answers and sample.metadata["query"] == clean.metadata["query"], (
            variant
        )
        assert sample.score_output(perfect_answer(sample)) == 1.0, variant
        if variant.startswith(("paraphrase", "noise")):
            assert sample.metadata["needles"] == clean.metadata["needles"], variant


def test_a_variant_sample_plan_pairs_with_the_clean_plan():
    config = EvalConfig(tasks=("niah_single_1", "vt"), lengths=(2048,), samples=3,
                        perturb=tuple(expand("placement,noise=casing", ["niah_single_1", "vt"]).items()))  # fmt: skip
    plan = config.plan()
    clean = {s.key for s in plan if not s.variant}
    assert len(clean) == 6 and all(s.key[:4] in clean for s in plan)
    assert {s.variant for s in plan if s.task == "vt"} == {"", "placement=start", "placement=middle",
                                                          "placement=end", "noise=casing"}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "tasks", "message"),
    [
        ("bogus", ["niah_single_1"], "unknown perturbation family 'bogus'; choose from: distractors, format"),
        ("distractors=5", ["niah_single_1"], "distractors has no level '5'; choose from: 2, 8, 32"),
        ("lexical", ["niah_single_1", "vt"], "lexical does not apply to task vt"),
        ("haystack=noise", ["niah_single_1"], "noise is niah_single_1's own haystack"),
        ("format=value-digits", ["niah_single_2"], "values already are numbers"),
        ("distractors", ["cwe"], "families that apply to cwe: noise"),
        ("all,noise", ["vt"], "give all alone"),
        ("", ["vt"], "--perturb is empty"),
    ],
)
def test_bad_perturb_input_names_the_valid_choices(text, tasks, message):
    with pytest.raises(PerturbError, match=re.escape(message)):
        expand(text, tasks)

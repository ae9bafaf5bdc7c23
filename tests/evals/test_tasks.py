from __future__ import annotations

import json
import re

import pytest

from ctxops.evals.haystack import NOISE_BLOCK, Haystack
from ctxops.evals.sample import Metric
from ctxops.evals.tasks import RULER_TASKS, TASKS, TaskError, build_sample, read_qa_dataset, read_qa_file
from ctxops.evals.tasks.base import _largest_fitting
from ctxops.evals.tasks.common_words import english_words

# The length search fills a prompt with whole filler units, so a prompt falls short of its length by less than one
# unit: a sentence, a list entry or a distractor needle (up to ~90 tokens with the tiny test tokenizer).
TOLERANCE = 96


def test_every_ruler_task_is_registered():
    expected = {f"niah_single_{i}" for i in (1, 2, 3)} | {f"niah_multikey_{i}" for i in (1, 2, 3)}
    expected |= {"niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2"}
    assert expected == set(RULER_TASKS) and len(RULER_TASKS) == 13
    assert TASKS["qa"].metric is Metric.ANY and TASKS["qa_1"].metric is Metric.ANY


@pytest.mark.parametrize("task", sorted(set(RULER_TASKS) - {"qa_1", "qa_2"}))
@pytest.mark.parametrize("length", [2048, 3072])
def test_prompts_hit_the_requested_length(task, length, counter):
    sample = build_sample(task, length, 0.5, 7, counter)
    measured = counter(sample.prompt, sample.answer_prefix)
    assert measured == sample.input_tokens
    assert sample.total_tokens <= length
    assert length - sample.total_tokens < TOLERANCE


@pytest.mark.parametrize("task", ["niah_single_2", "vt", "cwe", "niah_multikey_3"])
def test_samples_are_deterministic_by_seed(task, counter):
    a = build_sample(task, 2048, 0.25, 3, counter)
    b = build_sample(task, 2048, 0.25, 3, counter)
    c = build_sample(task, 2048, 0.25, 4, counter)
    assert a == b and a.prompt_hash == b.prompt_hash
    assert c.prompt != a.prompt


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_2"])
@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_needle_sits_at_the_recorded_depth(task, depth, counter):
    sample = build_sample(task, 2048, depth, 11, counter)
    needle = sample.metadata["needles"][0]
    start = sample.prompt.index("\n\n") + 2  # the context sits between the instructions and the question
    end = sample.prompt.rindex("\n\n")
    context = sample.prompt[start:end]
    assert context.count(needle) == 1
    position = context.index(needle) / max(len(context) - len(needle), 1)
    assert abs(position - depth) < 0.08, (position, depth)
    assert sample.spec.depth == depth and sample.metadata["needle_depths"][0] == depth


@pytest.mark.parametrize(
    "task", ["niah_single_1", "niah_multikey_1", "niah_multikey_3", "niah_multivalue", "niah_multiquery"]
)
def test_each_gold_value_occurs_once_in_a_needle_for_a_queried_key(task, counter):
    sample = build_sample(task, 2048, 0.5, 5, counter)
    for value in sample.answers:
        assert sample.prompt.count(value) == 1
        line = next(n for n in sample.metadata["needles"] if value in n)
        assert any(f"for {key} is: {value}." in line for key in sample.metadata["query"])
    for key in sample.metadata["query"]:
        assert key in sample.answer_prefix
    if task == "niah_multikey_1":  # three distractor keys, not asked about
        assert len(sample.metadata["needles"]) == 4 and len(sample.answers) == 1


def test_multikey_2_haystack_is_all_distractor_needles(counter):
    sample = build_sample("niah_multikey_2", 2048, 0.5, 1, counter)
    context = sample.prompt.split("\n\n")[1]
    lines = context.split("\n")
    assert len(lines) > 5 and all(line.startswith("One of the special magic numbers for ") for line in lines)
    keys = [re.search(r"for (\S+) is:", line).group(1) for line in lines]
    assert len(set(keys)) == len(keys)  # every key unique: the question has one answer


def test_variable_tracking_chain_is_in_order_and_complete(counter):
    sample = build_sample("vt", 2048, 0.3, 2, counter)
    question = sample.prompt[sample.prompt.rindex("Keep track") :]
    names = sample.answers
    assert len(names) == 5
    positions = [question.index(line) for line in sample.metadata["needles"]]
    assert positions == sorted(positions)
    value = sample.metadata["needles"][0].split("= ")[1].rstrip(".")
    assert question.count(f"= {value}.") == 1 and value in sample.answer_prefix


def test_common_words_counts(counter):
    sample = build_sample("cwe", 2048, None, 3, counter)
    question = sample.prompt[sample.prompt.rindex("Below is a numbered list") :]
    words = re.findall(r"\d+\. (\S+)", question)
    for word in sample.answers:
        assert words.count(word) == sample.metadata["freq_common"]
    others = {w for w in words if w not in sample.answers}
    assert others and all(words.count(w) == sample.metadata["freq_uncommon"] for w in others)
    assert sample.spec.depth is None


def test_frequent_words_gold_is_ranks_two_to_four(counter):
    sample = build_sample("fwe", 2048, 0.5, 9, counter)
    text = sample.prompt.split("\n\n")[1].split()
    counts = {w: text.count(w) for w in set(text)}
    ranked = sorted((w for w in counts if w != "..."), key=lambda w: -counts[w])
    assert tuple(ranked[:3]) == sample.answers
    assert counts[ranked[2]] > counts[ranked[3]]  # the top three is unambiguous
    assert counts["..."] > counts[ranked[0]]


def test_qa_places_gold_documents_among_distractors(tmp_path, counter):
    rows = [{"documents": [f"Record {i} says the code word is word{i}. " * 3], "question": f"What is code {i}?",
             "answers": [f"word{i}", f"w{i}"]} for i in range(6)]  # fmt: skip
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    records = read_qa_file(path)
    sample = build_sample("qa", 1024, 0.0, 1, counter, qa_records=records)
    record = records[sample.metadata["record"]]
    assert sample.prompt.index(record.documents[0]) < sample.prompt.index("Document 2:")
    assert sample.answers == record.answers and sample.metric is Metric.ANY
    with pytest.raises(TaskError, match="--qa-file"):
        build_sample("qa", 1024, 0.0, 1, counter)


def test_user_haystack_files(tmp_path, counter):
    text = " ".join(f"Sentence number {i} is about the weather in town {i}." for i in range(40))
    (tmp_path / "mine.txt").write_text(text)
    haystack = Haystack((str(tmp_path / "mine.txt"),))
    sample = build_sample("niah_single_2", 2048, 0.5, 1, counter, haystack=haystack)
    assert "about the weather in town" in sample.prompt
    with pytest.raises(ValueError, match="does not exist"):
        Haystack(("/no/such/file.txt",))


def test_unknown_task_and_too_short_length(counter):
    with pytest.raises(TaskError, match="unknown task 'niah_single_9'.*choose from"):
        build_sample("niah_single_9", 2048, 0.5, 1, counter)
    with pytest.raises(TaskError, match="too short for task 'cwe'"):
        build_sample("cwe", 256, None, 1, counter)


def test_largest_fitting_is_exact():
    for budget in (0, 5, 37, 1000, 12345):
        for cost in (1, 3, 17):
            n = _largest_fitting(lambda k, c=cost: 10 + c * k, budget + 10, 0)
            assert 10 + cost * n <= budget + 10 < 10 + cost * (n + 1)


def test_noise_haystack_is_rulers_block_one_a_line(counter):
    sample = build_sample("niah_single_1", 1024, 0.5, 1, counter)
    lines = sample.prompt.split("\n\n")[1].split("\n")
    assert lines.count(NOISE_BLOCK) == len(lines) - 1 and len(lines) > 5
    assert NOISE_BLOCK.count(".") == 5


@pytest.mark.parametrize("task", ["niah_single_1", "niah_single_2", "niah_multikey_1"])
def test_samples_of_one_length_share_the_haystack_up_to_the_first_needle(task, counter):
    deep = build_sample(task, 2048, 1.0, 1, counter)
    shallow = build_sample(task, 2048, 0.5, 2, counter)
    first_needle = min(s.prompt.index(n) for s in (deep, shallow) for n in s.metadata["needles"])
    assert first_needle > 200 and deep.prompt[:first_needle] == shallow.prompt[:first_needle]


def test_vt_answer_prefix_counts_the_variables_and_the_example_is_answered(counter):
    sample = build_sample("vt", 2048, 0.5, 4, counter)
    assert "5 variables are assigned the value" in sample.answer_prefix
    example, _ = sample.prompt.split("\n\nKeep track", 1)
    assert re.search(r"5 variables are assigned the value \d+; they are: ([A-Z]{5} ){4}[A-Z]{5}$", example)


def test_cwe_draws_english_words_and_answers_its_example(counter):
    sample = build_sample("cwe", 8192, None, 5, counter)
    pool = set(english_words())
    assert len(pool) > 5000 and set(sample.answers) <= pool
    example = sample.prompt[: sample.prompt.index("Below is a numbered list", 10)]
    entries = re.findall(r"\d+\. (\S+)", example.split("Answer:")[0])
    assert len(entries) == 10 * 10 + 30 * 3  # RULER's example at 4K and above
    assert re.search(r"are: 1\. \S+ 2\. \S+ .* 10\. \S+\n\n$", example)


def test_squad_and_hotpotqa_files_make_qa_1_and_qa_2(tmp_path, counter):
    squad = {"data": [{"paragraphs": [
        {"context": f"Paragraph {a}-{p} says the lake is number {a}{p}.",
         "qas": [{"question": f"Which lake in {a}-{p}?", "answers": [{"text": f"{a}{p}"}, {"text": f"{a}{p}"}],
                  "is_impossible": False},
                 {"question": "Unanswerable?", "answers": [], "is_impossible": True}]}
        for p in range(3)]} for a in range(4)]}  # fmt: skip
    hotpot = [{"question": f"Who {i}?", "answer": f"person {i}", "context": [[f"T{i}{j}", [f"S{i}{j}a. ", "b."]]
               for j in range(3)]} for i in range(5)]  # fmt: skip
    (tmp_path / "squad.json").write_text(json.dumps(squad))
    (tmp_path / "hotpot.json").write_text(json.dumps(hotpot))
    task, records = read_qa_dataset(tmp_path / "squad.json")
    assert task == "qa_1" and len(records) == 12 and records[0].answers == ("00",)
    assert len(records[0].related) == 2  # the other paragraphs of the same article
    sample = build_sample("qa_1", 1024, 0.0, 1, counter, qa_records=records)
    record = records[sample.metadata["record"]]
    assert sample.prompt.index(record.documents[0]) < sample.prompt.index("Document 2:")
    docs = re.findall(r"Document \d+:\n(.*)", sample.prompt)
    assert len(docs) > 12 and len(set(docs[:12])) == 12  # each of the 12 paragraphs once before any repeats
    task, records = read_qa_dataset(tmp_path / "hotpot.json")
    assert (
        task == "qa_2" and records[1].documents[0] == "T10\nS10a. b." and records[1].answers == ("person 1",)
    )
    assert build_sample("qa_2", 1024, 0.5, 1, counter, qa_records=records).metric is Metric.ANY
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a SQuAD 2.0 or HotpotQA file"):
        read_qa_dataset(tmp_path / "other.json")
    with pytest.raises(TaskError, match="--qa-data"):
        build_sample("qa_1", 1024, 0.0, 1, counter)

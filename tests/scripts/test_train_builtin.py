"""The builtin model's training script: a few steps on a tiny config, resume, export, and the shipped model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train_builtin.py"


@pytest.fixture(scope="module")
def tb():
    spec = importlib.util.spec_from_file_location("train_builtin", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_builtin"] = module
    spec.loader.exec_module(module)
    return module


def test_tokenizer_splits_digits(tb, tmp_path):
    from tokenizers import Tokenizer

    tb.build_tokenizer(tmp_path, 512, seed=0)
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    pieces = tok.encode("is: 1234567.", add_special_tokens=False).tokens
    assert pieces[-8:-1] == list("1234567")
    assert tok.decode(tok.encode("any text, even ünïcödé 42").ids) == "any text, even ünïcödé 42"


def test_training_docs_supervise_answers_in_eval_format(tb, tmp_path):
    tb.build_tokenizer(tmp_path, 512, seed=0)
    maker = tb.DocMaker(tmp_path, tb.Recipe())
    ids, weights, _ = maker.dense_doc(__import__("random").Random(1), 256)
    assert len(ids) == len(weights) <= 256
    text = maker.tok.decode(ids, skip_special_tokens=False)
    assert "<|im_start|>assistant\nThe special magic numbers for " in text
    answer = maker.tok.decode([i for i, w in zip(ids, weights, strict=True) if w == 1.0])
    assert any(ch.isdigit() for ch in answer)


def test_key_marks_sit_on_needle_values_and_answer_starts(tb, tmp_path):
    """Every needle's first value digit is marked with its key, and so is the start of every value in an answer."""
    import random
    import re

    from ctxops.evals import words

    tb.build_tokenizer(tmp_path, 512, seed=0)
    maker = tb.DocMaker(tmp_path, tb.Recipe())
    asked = multi = 0
    for seed in range(12):
        ids, weights, marks = maker.dense_doc(random.Random(seed), 512, drill=True)
        text = maker.tok.decode(ids, skip_special_tokens=False)
        needles = text.count("One of the special magic numbers for ")
        value_marks = [
            (p, a, n) for p, a, n in marks if weights[p] != 1.0 and maker.tok.decode([ids[p]]).isdigit()
        ]
        assert len(value_marks) == needles >= 3
        for p, a, n in value_marks:
            key = f"{words.ADJECTIVES[a]}-{words.NOUNS[n]}"
            assert maker.tok.decode(ids[max(0, p - 40) : p]).endswith(f" for {key} is: ")
        # each answer value: the two tokens before its first digit carry the key whose needle holds that value
        values = dict(re.findall(r"numbers for (\S+) is: (\d+)\.", text))
        slots = [(p, a, n) for p, a, n in marks if p + 1 < len(ids) and weights[p + 1] == 1.0]
        slots = [(p, a, n) for p, a, n in slots if maker.tok.decode([ids[p + 1]]).isdigit()]
        assert slots, "a drill asks at least one question"
        for p, a, n in slots:
            key = f"{words.ADJECTIVES[a]}-{words.NOUNS[n]}"
            assert (p - 1, a, n) in marks
            assert maker.tok.decode(ids[p + 1 : p + 8]) == values[key]
        asked += len(slots)
        multi += any(weights[p - 1] == 1.0 for p, _, _ in slots)  # a later value of a multi-key answer
    assert asked >= 12 and multi >= 1
    from builtin_training.data import key_label  # importable once the script has set up its path

    assert key_label("quiet-lantern") is not None and key_label("x-y") is None


def test_compact_drills_ask_about_their_own_needles(tb, tmp_path):
    import random

    tb.build_tokenizer(tmp_path, 512, seed=0)
    maker = tb.DocMaker(tmp_path, tb.Recipe(compact=1.0))
    ids, weights, marks = maker.doc(7, 256)
    text = maker.tok.decode(ids, skip_special_tokens=False)
    assert "<|im_start|>" not in text and text.count("\nThe special magic numbers for ") == 4
    needles = dict(__import__("re").findall(r"numbers for (\S+) is: (\d+)\.", text))
    for key, value in __import__("re").findall(r"\nThe special magic numbers for (\S+) are (\d+)\.", text):
        assert needles[key] == value
    assert len(marks) == len(needles) + 2 * 4
    assert maker.compact_doc(random.Random(1), 2048)[0]  # longer budgets get more needles, same format


def test_key_probe_trains_but_is_never_exported(tb, tmp_path):
    """With ``key_aux`` the probe's loss is logged and checkpointed; the exported weights are a plain Llama."""
    import json as _json

    from safetensors.torch import load_file

    recipe = tb.Recipe.tiny()
    recipe.key_focus, recipe.key_aux = 0.5, 0.1
    work, out = tmp_path / "work", tmp_path / "out"
    tb.train(recipe, work, out, quiet=True, stop_at=3)
    records = [_json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert all(r["key_loss"] > 0 for r in records if "loss" in r)
    assert "probe" in __import__("torch").load(work / "checkpoint.pt", weights_only=False)
    names = list(load_file(str(out / "model.safetensors")))
    assert "lm_head.weight" in names and not [k for k in names if "adjective" in k or "noun" in k]
    tb.train(recipe, work, out, quiet=True, stop_at=4)  # resumes with the probe's state
    assert [_json.loads(line).get("step") for line in (work / "log.jsonl").read_text().splitlines()][-2] == 4


def test_few_steps_resume_and_export(tb, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    args = ["--tiny", "--quiet", "--work", str(work), "--out", str(out), "--threads", "1"]
    tb.main([*args, "--steps", "3"])
    tb.main([*args, "--steps", "3", "--stop-at", "2"])  # already past: exports the checkpoint at once
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).is_file()

    # interrupted runs go on from the checkpoint: a longer schedule needs a fresh work dir (the recipe differs)
    with pytest.raises(SystemExit):
        tb.main([*args, "--steps", "5"])

    from ctxops import LLM, SamplingParams

    llm = LLM(str(out))
    result = llm.generate(["hello"], SamplingParams(temperature=0.0, max_tokens=3), use_tqdm=False)
    assert len(result[0].outputs[0].token_ids) >= 1


def test_resume_continues_the_same_run(tb, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    args = ["--tiny", "--quiet", "--work", str(work), "--out", str(out), "--threads", "1", "--steps", "4"]
    tb.main([*args, "--stop-at", "2"])
    tb.main(args)
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]


def test_shipped_builtin_retrieves_needles_by_key():
    """The shipped model loads by name and finds the asked needle at every depth of 512-token haystacks, alone or
    among four needles with different keys (it scores 100 on each)."""
    import ctxops.evals.tasks  # noqa: F401
    from ctxops import LLM, SamplingParams
    from ctxops.evals.prompt import TokenizerCounter
    from ctxops.evals.tasks.base import build_sample
    from ctxops.models.loader import BUILTIN_DIR

    if not (BUILTIN_DIR / "config.json").is_file():
        pytest.skip("builtin is not shipped in this checkout")
    llm = LLM("builtin")
    counter = TokenizerCounter(llm.get_tokenizer())
    samples = [
        build_sample(task, 512, depth, 500 + i, counter)
        for i, (task, depth) in enumerate(
            (t, d)
            for t in ("niah_single_1", "niah_single_2", "niah_multikey_1")
            for d in (0.0, 0.25, 0.5, 0.75, 1.0)
        )
    ]
    prompts = [counter.encode(s.prompt, s.answer_prefix) for s in samples]
    params = SamplingParams(temperature=0.0, max_tokens=16)
    outputs = llm.generate(prompts, params, use_tqdm=False)
    found = [s.answers[0] in o.outputs[0].text for s, o in zip(samples, outputs, strict=True)]
    assert sum(found) >= 14, [(s.answers, o.outputs[0].text) for s, o in zip(samples, outputs, strict=True)]
    assert all(o.outputs[0].text.strip().endswith(".") for o in outputs)


def test_fine_tune_recipes_need_weights_to_start_from(tb, tmp_path, capsys):
    for recipe in ("cpu-keys", "gpu-keys"):
        with pytest.raises(SystemExit):
            tb.main(["--recipe", recipe, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
        assert "--init-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tb.main(["--recipe", "cpu-keys", "--init-from", str(tmp_path), "--work", str(tmp_path / "w")])
    assert "no config.json" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()

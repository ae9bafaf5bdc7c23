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
    maker = tb.DocMaker(tmp_path, context_weight=0.1)
    ids, weights = maker.dense_doc(__import__("random").Random(1), 256)
    assert len(ids) == len(weights) <= 256
    text = maker.tok.decode(ids, skip_special_tokens=False)
    assert "<|im_start|>assistant\nThe special magic numbers for " in text
    answer = maker.tok.decode([i for i, w in zip(ids, weights, strict=True) if w == 1.0])
    assert any(ch.isdigit() for ch in answer)


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


def test_shipped_builtin_retrieves_single_needles():
    """The shipped model loads by name and finds the needle at every depth of 512-token haystacks (it scores 100)."""
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
            (t, d) for t in ("niah_single_1", "niah_single_2") for d in (0.0, 0.25, 0.5, 0.75, 1.0)
        )
    ]
    prompts = [counter.encode(s.prompt, s.answer_prefix) for s in samples]
    params = SamplingParams(temperature=0.0, max_tokens=16)
    outputs = llm.generate(prompts, params, use_tqdm=False)
    found = [s.answers[0] in o.outputs[0].text for s, o in zip(samples, outputs, strict=True)]
    assert sum(found) >= 9, [(s.answers, o.outputs[0].text) for s, o in zip(samples, outputs, strict=True)]
    assert all(o.outputs[0].text.strip().endswith(".") for o in outputs)

"""``ctxops eval --sweep``: one run per engine configuration and one accuracy-vs-memory report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.engine.config import EngineConfig
from ctxops.evals.sweep import (
    SweepError,
    configurations,
    full_bytes_per_token,
    kept_share,
    parse_sweep,
    run_name,
)


def test_parse_sweep_types_values_and_crosses_axes():
    axes = parse_sweep(
        ["kv_cache_dtype=auto,int8", "kv-compression-ratio=0.25,0.5", "kv_press=none,snapkv"], EngineConfig
    )
    assert axes[1] == ("kv_compression_ratio", [0.25, 0.5]) and axes[2] == ("kv_press", [None, "snapkv"])
    configs = configurations(axes)
    assert len(configs) == 8 and configs[0] == {
        "kv_cache_dtype": "auto",
        "kv_compression_ratio": 0.25,
        "kv_press": None,
    }
    assert run_name(configs[-1]) == "kv_cache_dtype=int8,kv_compression_ratio=0.5,kv_press=snapkv"
    # a file path stays one directory level, and two same-named files in different folders stay apart
    one, two = (
        run_name({"kv_head_policy": "a/heads/policy.json"}),
        run_name({"kv_head_policy": "b/policy.json"}),
    )
    assert "/" not in one and one.startswith("kv_head_policy=policy.json-") and one != two
    for bad in ("nope=1,2", "kv_cache_dtype", "block_size=big"):
        with pytest.raises(SweepError):
            parse_sweep([bad], EngineConfig)


def test_cli_sweep_over_kv_cache_dtype(tmp_path, tiny_model_dir):
    out = tmp_path / "sweep"
    args = ["eval", "--model", str(tiny_model_dir), "--tasks", "niah_single_1", "--lengths", "1k", "--samples", "1",
            "--depths", "1", "--out", str(out), "--kv-cache-memory", "8MiB", "--max-num-seqs", "4",
            "--no-progress", "--sweep", "kv_cache_dtype=auto,int8,int4"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    sweep = json.loads((out / "sweep.json").read_text())
    rows = {r["name"]: r for r in sweep["configurations"]}
    assert list(rows) == ["kv_cache_dtype=auto", "kv_cache_dtype=int8", "kv_cache_dtype=int4"]
    auto, int8, int4 = rows.values()
    assert auto["kv_bytes_per_token"] > int8["kv_bytes_per_token"] > int4["kv_bytes_per_token"]
    assert int4["tokens_per_byte_vs_first"] > int8["tokens_per_byte_vs_first"] > 1
    run = json.loads((out / "kv_cache_dtype=int8" / "run.json").read_text())
    assert (
        run["target"]["engine"]["kv_cache_dtype"] == "int8" and run["target"]["kv_cache"]["dtype"] == "int8"
    )
    assert "<svg" in (out / "sweep.html").read_text()


def test_question_start_splits_context_and_question():
    import ctxops.evals.tasks  # noqa: F401
    from ctxops.evals.prompt import TokenizerCounter
    from ctxops.evals.targets.local import question_start
    from ctxops.evals.tasks.base import build_sample
    from ctxops.models.loader import BUILTIN_DIR
    from ctxops.models.tokenizer import Tokenizer

    counter = TokenizerCounter(Tokenizer(BUILTIN_DIR))
    for task in ("niah_single_1", "niah_multikey_1", "vt"):
        sample = build_sample(task, 1024, 0.5, 7, counter)
        ids = counter.encode(sample.prompt, sample.answer_prefix)
        start = question_start(counter, sample, ids)
        assert start is not None and 0 < start < len(ids)
        question = counter.tokenizer.decode(ids[start:])
        assert question.lstrip().startswith(
            sample.prompt.rsplit("\n\n", 1)[1][:20]
        )  # the question, then more
        assert sample.answers[0] not in question  # the needle stays in the compressed context


def test_cli_sweep_over_query_awareness(tmp_path, tiny_model_dir):
    out = tmp_path / "qa-sweep"
    args = ["eval", "--model", str(tiny_model_dir), "--tasks", "niah_single_1", "--lengths", "1k", "--samples", "1",
            "--depths", "1", "--out", str(out), "--kv-cache-memory", "8MiB", "--max-num-seqs", "4",
            "--no-progress", "--kv-press", "snapkv", "--sweep", "kv_press_query_aware=true,false"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "sweep.json").read_text())["configurations"]
    assert [r["kv_press_query_aware"] for r in rows] == [True, False]
    samples = [json.loads((out / r["name"] / "samples.jsonl").read_text().splitlines()[0]) for r in rows]
    assert all(s["prompt_tokens"] == samples[0]["prompt_tokens"] for s in samples)  # same items, both ways


def test_a_head_policy_run_counts_its_real_pool_bytes():
    """A split-storage run's kept share is (its blocks + its ring) / a full cache's bytes, averaged over lengths."""
    policy = {"retrieval_kv_heads": [[True, False]], "sink": 4, "recent": 60}
    cache = {
        "block_size": 16,
        "bytes_per_block": 16 * 256,
        "bytes_per_token": 256,
        "full_bytes_per_token": 512,
        "num_rings": 8,
        "ring_bytes_per_sequence": 64 * 256,
    }
    target = {"engine": {}, "kv_head_policy": policy, "kv_cache": cache}
    # 1,024 tokens: 64 blocks of 4 KiB + a 16 KiB ring = 278,528 of 524,288 bytes
    assert kept_share(target, [1024]) == pytest.approx((64 * 4096 + 16384) / (1024 * 512))
    assert full_bytes_per_token(cache) == 512

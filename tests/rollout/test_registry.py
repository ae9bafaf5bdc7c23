"""The registry through its CLI: versions hashed from real model directories, eval runs linked by target, diff."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.engine.config import EngineConfig
from ctxops.evals.config import EvalConfig
from ctxops.evals.report import write_reports
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval
from ctxops.evals.targets.local import LocalTarget
from ctxops.rollout.registry import content_hash

CONFIG = EvalConfig(tasks=("niah_single_1",), lengths=(512,), samples=2, depths=2)


def ctxops(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != 0
    return result.output


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """Two real in-process eval runs of the tiny model, same seeds: default KV and int4 KV."""
    out = {}
    for kv in ("auto", "int4"):
        run_dir = RunDir(tmp_path_factory.mktemp(f"eval-{kv}"))
        config = EngineConfig(model=str(tiny_model_dir), kv_cache_memory="16MiB", kv_cache_dtype=kv)
        asyncio.run(run_eval(CONFIG, LocalTarget(config), run_dir, show_progress=False))
        write_reports(run_dir)
        out[kv] = str(run_dir.path)
    return out


def test_content_hash_follows_the_bytes(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert content_hash(copy) == content_hash(tiny_model_dir)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert content_hash(copy) != content_hash(tiny_model_dir)


def test_add_list_show_diff_with_linked_eval_runs(tiny_model_dir, runs, tmp_path):
    db = str(tmp_path / "registry.db")
    base = ["--db", db]
    ctxops("registry", "add", "tiny", "--version", "v1", "--path", str(tiny_model_dir), *base)
    ctxops("registry", "add", "tiny", "--version", "v2", "--path", str(tiny_model_dir),
           "--setting", "kv_cache_dtype=int4", "--notes", "int4 KV", "--eval-run", runs["auto"],
           "--eval-run", runs["int4"], *base)  # fmt: skip
    listing = ctxops("registry", "list", *base)
    assert "v1" in listing and "kv_cache_dtype=int4" in listing
    v1 = json.loads(ctxops("registry", "show", "tiny", "--version", "v1", *base))
    v2 = json.loads(ctxops("registry", "show", "tiny", *base))  # newest
    assert v2["version"] == "v2" and v1["content_hash"] == v2["content_hash"] == content_hash(tiny_model_dir)
    assert v1["config"]["num_hidden_layers"] == 2 and v1["tokenizer_hash"]
    assert [r["run_id"] for r in v1["eval_runs"]] == [runs["auto"]]  # the int4 run is v2's
    assert [r["run_id"] for r in v2["eval_runs"]] == [runs["int4"]]
    diff = json.loads(ctxops("registry", "diff", "tiny", "v1", "v2", *base))
    assert (
        diff["same_content"]
        and diff["config"] == {}
        and diff["settings"] == {"kv_cache_dtype": [None, "int4"]}
    )
    assert [e["run_id"] for e in diff["evals"]] == [runs["auto"], runs["int4"]]
    assert (
        diff["paired_test"] and diff["paired_test"][0]["n_pairs"] == 2
    )  # same seeds: paired sample by sample


def test_bad_input_is_refused(tiny_model_dir, tmp_path):
    base = ["--db", str(tmp_path / "r.db")]
    ctxops("registry", "add", "m", "--version", "v1", "--path", str(tiny_model_dir), *base)
    assert "registered already" in fails(
        "registry", "add", "m", "--version", "v1", "--path", str(tiny_model_dir), *base
    )
    assert "--model-name" in fails(
        "registry", "add", "m", "--version", "v9", "--endpoint", "http://h:1/v1", *base
    )
    assert "exactly one" in fails("registry", "add", "m", "--version", "v9", *base)
    assert "no config.json" in fails(
        "registry", "add", "m", "--version", "v9", "--path", str(tmp_path), *base
    )
    assert "KEY=VALUE" in fails("registry", "add", "m", "--version", "v9", "--path", str(tiny_model_dir),
                                "--setting", "oops", *base)  # fmt: skip
    assert "no version v7" in fails("registry", "diff", "m", "v1", "v7", *base)

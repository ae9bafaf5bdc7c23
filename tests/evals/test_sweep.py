"""``ctxops eval --sweep``: one run per engine configuration and one accuracy-vs-memory report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.engine.config import EngineConfig
from ctxops.evals.sweep import SweepError, configurations, parse_sweep, run_name


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

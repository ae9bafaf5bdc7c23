"""``ctxops generate`` end to end: real model directory, flags generated from the engine config, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from ctxops.cli.main import cli


def test_generate_prints_json(tiny_model_dir):
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--kv-cache-memory",
            "2MiB",
            "--max-model-len",
            "256",
            "--max-tokens",
            "5",
            "--temperature",
            "0",
            "--ignore-eos",
            "--json",
            "hello there",
            "the key value cache",
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [r["prompt"] for r in records] == ["hello there", "the key value cache"]
    assert all(len(r["token_ids"]) == 5 and r["finish_reason"] == "length" for r in records)


def test_engine_defaults_come_from_the_config():
    result = CliRunner().invoke(cli, ["generate", "--help"])
    assert "--kv-cache-memory" in result.output and "--max-num-batched-tokens" in result.output
    assert "[default: 8192]" in result.output  # EngineConfig.max_num_batched_tokens


def test_bad_flags_and_models_fail_clearly(tiny_model_dir, tmp_path):
    runner = CliRunner()
    bad_size = runner.invoke(
        cli, ["generate", "--model", str(tiny_model_dir), "--kv-cache-memory", "lots", "x"]
    )
    assert bad_size.exit_code != 0 and "cannot read 'lots' as a size" in bad_size.output
    missing = runner.invoke(cli, ["generate", "--model", str(tmp_path / "none"), "x"])
    assert missing.exit_code == 1 and "no such model directory" in missing.output
    too_long = runner.invoke(
        cli,
        [
            "generate",
            "--model",
            str(tiny_model_dir),
            "--max-model-len",
            "8",
            "--kv-cache-memory",
            "1MiB",
            "a long prompt that has many more tokens than eight",
        ],
    )
    assert too_long.exit_code == 1 and "longer than the maximum model length of 8" in too_long.output
    bad_temp = runner.invoke(cli, ["generate", "--model", str(tiny_model_dir), "--temperature", "-2", "x"])
    assert bad_temp.exit_code == 2 and "temperature must be >= 0" in bad_temp.output


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "ctxops", "--version"], capture_output=True, text=True, check=True
    )
    assert "ctxops" in out.stdout


def test_default_model_is_builtin():
    result = CliRunner().invoke(cli, ["generate", "--max-tokens", "4", "--json", "hello"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["prompt"] == "hello" and 1 <= len(record["token_ids"]) <= 4

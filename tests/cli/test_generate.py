"""``ctxops generate`` end to end: real model directory, flags generated from the engine config, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
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
    assert bad_temp.exit_code == 2 and "temperature must be a finite number in [0, 2]" in bad_temp.output


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--seed", "18446744073709551616", "seed must be an integer in [-2**63, 2**63 - 1]"),
        ("--temperature", "inf", "'inf' is not a finite number"),
        ("--temperature", "nan", "'nan' is not a finite number"),
        ("--temperature", "1e9", "temperature must be a finite number in [0, 2]"),
        ("--top-p", "0", "top_p must be a finite number in (0, 1]"),
    ],
)
def test_out_of_range_numbers_name_their_flag(tiny_model_dir, flag, value, message):
    """Each was accepted, or crashed the engine with a traceback that did not name the flag."""
    result = CliRunner().invoke(cli, ["generate", "--model", str(tiny_model_dir), flag, value, "x"])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("flag", ["--top-p", "--temperature"])
def test_vanishing_top_p_or_temperature_samples_the_mode(tiny_model_dir, flag):
    """1e-300 rounds to 0 in float32 (top_p) or overflows the logits (temperature): both used to raise."""
    args = ["generate", "--model", str(tiny_model_dir), "--max-tokens", "6", "--json", "hello there"]
    tiny = CliRunner().invoke(cli, [*args, flag, "1e-300"])
    greedy = CliRunner().invoke(cli, [*args, "--temperature", "0"])
    assert tiny.exit_code == 0, tiny.output
    assert json.loads(tiny.output)["token_ids"] == json.loads(greedy.output)["token_ids"]


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

"""Every float flag of every command refuses nan and inf at the edge, naming the flag (one shared click type)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli

CASES = [
    ("plan llama-3.1-8b --gpu h100 --max-model-len 8192", "--price-per-gpu-hour"),
    ("plan llama-3.1-8b --gpu h100 --max-model-len 8192", "--gpu-memory-utilization"),
    (
        "eval --endpoint http://127.0.0.1:9/v1 --model-name x --tasks niah_single_1 --lengths 512 --out OUT",
        "--timeout",
    ),
    (
        "eval --endpoint http://127.0.0.1:9/v1 --model-name x --tasks niah_single_1 --lengths 512 --out OUT",
        "--threshold",
    ),
    ("report OUT", "--threshold"),
    ("compare OUT OUT", "--alpha"),
    ("serve", "--drain-timeout"),
    ("serve", "--upstream-timeout"),
    ("generate x", "--kv-compression-ratio"),
]


@pytest.mark.parametrize(("command", "flag"), CASES)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_floats_are_refused_naming_the_flag(command, flag, value, tmp_path):
    args = command.replace("OUT", str(tmp_path)).split() + [flag, value]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output and "not a finite number" in result.output


def test_threshold_is_a_score_between_0_and_100(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--threshold", "150"])
    assert result.exit_code == 2 and "150 is not in [0, 100]" in result.output

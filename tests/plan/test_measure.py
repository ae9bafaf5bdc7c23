import json

from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.plan.measure import measure


def test_measure_matches_the_engine_on_kv_bytes_and_pool(tiny_model_dir):
    rows = {
        row.name: row
        for row in measure(tiny_model_dir, kv_cache_memory=2**20, max_model_len=128, max_tokens=4)
    }
    assert rows["KV bytes per token"].ratio == 1.0
    assert rows["KV pool"].ratio == 1.0
    assert rows["decode time per token (bandwidth roofline)"].measured > 0


def test_measure_cli_json(tiny_model_dir):
    result = CliRunner().invoke(
        cli,
        [
            "plan",
            str(tiny_model_dir),
            "--measure",
            "--max-model-len",
            "128",
            "--kv-cache-memory",
            str(2**20),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    names = [row["name"] for row in json.loads(result.output)]
    assert names[0] == "KV bytes per token"

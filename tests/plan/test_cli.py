import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli


def _run(*args):
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["plan", *args])


def test_json_has_the_required_keys():
    result = _run(
        "llama-3.1-8b",
        "--gpu",
        "h100",
        "--max-model-len",
        "16000",
        "--gpu-memory-utilization",
        "0.9",
        "--block-size",
        "128",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("weights_bytes", "kv_bytes_per_token", "kv_cache_tokens", "max_concurrency", "fits"):
        assert key in data
    assert data["kv_bytes_per_token"] == 131_072
    assert data["kv_cache_tokens"] == pytest.approx(420_905, rel=0.02)
    assert data["fits"] is True


def test_rtx3090_refuses_29k_and_names_the_kv_cache():
    result = _run(
        "meta-llama/Llama-3.1-8B",
        "--gpu",
        "rtx3090",
        "--max-model-len",
        "29000",
        "--gpu-memory-utilization",
        "0.9",
        "--engine-profile",
        "v0",
        "--json",
    )
    data = json.loads(result.output)
    assert data["fits"] is False and data["limit"] == "kv_cache"


def test_table_output_names_the_verdict():
    result = _run("gemma-2-9b", "--gpu", "l40s", "--max-model-len", "8192")
    assert result.exit_code == 0, result.output
    assert "verdict" in result.output and "21 windowed" in result.output


def test_recommend_json_is_sorted():
    result = _run(
        "qwen2.5-7b", "--max-model-len", "32768", "--concurrency", "4", "--recommend", "--top", "5", "--json"
    )
    assert result.exit_code == 0, result.output
    costs = [p["cost_per_million_tokens"] for p in json.loads(result.output)]
    assert costs == sorted(costs) and len(costs) == 5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no-such-model"], "llama-3.1-8b"),  # lists presets
        (["llama-3.1-8b", "--gpu", "tpu"], "rtx3090"),  # lists GPUs
        (["llama-3.1-8b", "--kv-dtype", "fp4"], "bf16"),  # lists KV dtypes
        (["llama-3.1-8b", "--max-model-len", "500000"], "131,072"),  # the model's limit
        (["llama-3.1-8b", "--gpu", "h100x2", "--tp", "3"], "--tp 3"),
        (["llama-3.1-8b", "--gpu-memory-utilization", "1.5"], "gpu_memory_utilization"),
        (["llama-3.1-8b", "--gpu-memory", "24"], "--gpu-bandwidth"),
        (["llama-3.1-8b", "--measure"], "local model directory"),
    ],
)
def test_bad_input_is_a_clear_error(args, expected):
    result = _run(*args)
    assert result.exit_code != 0
    assert expected in result.output
    assert "Traceback" not in result.output


def test_config_missing_a_field_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    result = _run(str(tmp_path))
    assert result.exit_code != 0 and "num_attention_heads" in result.output


def test_plan_imports_no_torch():
    code = (
        "import sys; import ctxops.plan; from ctxops.cli.main import cli\n"
        "try:\n    cli(['plan', 'llama-3.1-8b', '--json'])\nexcept SystemExit as e:\n    assert e.code == 0, e\n"
        "assert 'torch' not in sys.modules, 'ctxops plan imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_public_api_still_resolves_lazily():
    code = "import sys, ctxops; assert 'torch' not in sys.modules; from ctxops import LLM, SamplingParams; print(LLM)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "LLM" in out.stdout


def test_an_unknown_architecture_is_refused_unless_assumed_dense(tmp_path):
    config = {
        "architectures": ["MambaForCausalLM"],
        "model_type": "mamba",
        "hidden_size": 512,
        "num_attention_heads": 8,
        "num_hidden_layers": 4,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    refused = _run(str(tmp_path))
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "MambaForCausalLM" in refused.output and "LlamaForCausalLM" in refused.output
    assert "--assume-dense" in refused.output
    table = _run(str(tmp_path), "--assume-dense")
    assert table.exit_code == 0, table.output
    assert "warning" in table.output and "MambaForCausalLM" in table.output
    as_json = CliRunner(env={"COLUMNS": "200"}).invoke(
        cli, ["plan", str(tmp_path), "--assume-dense", "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    assert "MambaForCausalLM" in json.loads(as_json.stdout)["warnings"][0]
    assert "Warning: MambaForCausalLM" in as_json.stderr

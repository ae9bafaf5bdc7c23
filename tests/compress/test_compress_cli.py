"""``ctxops compress``: the files a run leaves, and bad input refused at the edge with a fix in the message."""

import json

from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.models.loader import resolve_model_path


def test_heads_writes_scores_heatmap_and_policy(tmp_path):
    out = tmp_path / "heads"
    result = CliRunner().invoke(
        cli, ["compress", "heads", "builtin", "--out", str(out), "--lengths", "512", "--depths", "1", "--seeds", "1",
              "--no-eval"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "retrieval heads" in result.output
    scores = json.loads((out / "scores.json").read_text())
    assert len(scores["scores"]) == 4 and scores["kv_policy"]["num_layers"] == 4
    assert (out / "heatmap.svg").is_file() and (out / "head_policy.json").is_file()


def test_bad_input_is_refused(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli, ["compress", "prune", "builtin", "--heads", "1.5", "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 2 and "--heads must be in [0, 1)" in result.output
    result = runner.invoke(
        cli, ["compress", "prune", "builtin", "--mlp", "-0.1", "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 2 and "--mlp must be in [0, 1)" in result.output
    raw = json.loads((resolve_model_path("builtin") / "config.json").read_text())
    student = tmp_path / "student.json"
    student.write_text(json.dumps({**raw, "vocab_size": 32000}))
    result = runner.invoke(
        cli, ["compress", "distill", "--teacher", "builtin", "--student", str(student), "--out", str(tmp_path / "s"),
              "--tokens", "10", "--no-eval"],
    )  # fmt: skip
    assert result.exit_code == 2 and "vocab_size (32000) differs from the teacher's (2048)" in result.output
    policy = tmp_path / "policy.json"
    policy.write_text('{"format": "something else"}')
    result = runner.invoke(cli, ["generate", "--kv-head-policy", str(policy), "--max-tokens", "2", "hello"])
    assert result.exit_code != 0 and "not a head policy" in result.output

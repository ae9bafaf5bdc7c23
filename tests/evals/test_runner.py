from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.evals.config import EvalConfig
from ctxops.evals.rundir import RunDir, RunDirError, record_key
from ctxops.evals.runner import run_eval

CONFIG = EvalConfig(tasks=("niah_single_1", "vt"), lengths=(1024, 2048), samples=3, depths=3, concurrency=1)


def test_resume_after_an_interrupted_run(tmp_path, echo_target):
    run_dir = RunDir(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(run_eval(CONFIG, echo_target(fail_after=5), run_dir, show_progress=False))
    records = list(run_dir.records())
    assert len(records) == 5  # each finished sample was on disk before the interruption
    assert run_dir.read_run()["status"] == "partial"
    with run_dir.samples_path.open("a") as handle:  # a write cut short by the kill
        handle.write('{"task": "vt", "leng')
    target = echo_target()
    outcome = asyncio.run(run_eval(CONFIG, target, run_dir, show_progress=False))
    assert outcome.skipped == 5 and outcome.done == 7 and target.calls == 7
    records = list(run_dir.records())
    assert len(records) == 12 and len({record_key(r) for r in records}) == 12
    assert all(r["score"] == 1.0 for r in records[5:])
    assert run_dir.read_run()["status"] == "complete"
    again = echo_target()
    outcome = asyncio.run(run_eval(CONFIG, again, run_dir, show_progress=False))
    assert outcome.done == 0 and again.calls == 0 and len(list(run_dir.records())) == 12


def test_resume_refuses_a_different_target(tmp_path, echo_target):
    run_dir = RunDir(tmp_path / "run")
    config = EvalConfig(tasks=("niah_single_1",), lengths=(1024,), samples=1)
    asyncio.run(run_eval(config, echo_target(), run_dir, show_progress=False))
    with pytest.raises(RunDirError, match="different target"):
        asyncio.run(run_eval(config, echo_target(name="other"), run_dir, show_progress=False))


def test_record_fields(tmp_path, echo_target):
    run_dir = RunDir(tmp_path / "run")
    config = EvalConfig(tasks=("niah_single_1",), lengths=(1024,), samples=2, depths=2)
    asyncio.run(run_eval(config, echo_target(), run_dir, show_progress=False))
    record = next(run_dir.records())
    for field in ("prompt_hash", "task", "length", "depth", "seed", "output", "score", "prompt_tokens",
                  "cached_tokens", "output_tokens", "ttft_s", "tpot_s", "e2e_s"):  # fmt: skip
        assert field in record
    run = run_dir.read_run()
    for field in ("ctxops_version", "target", "tasks", "lengths", "seeds", "depths"):
        assert field in run


def test_cli_eval_in_process_then_report(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--tasks", "niah_single_1,fwe", "--lengths", "1k",
            "--samples", "2", "--depths", "2", "--out", str(out), "--kv-cache-memory", "64MiB", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 4
    niah = [r for r in records if r["task"] == "niah_single_1"]
    assert all(r["prompt_tokens"] == r["input_tokens"] and r["prompt_tokens"] + 128 <= 1024 for r in niah)
    assert all(r["ttft_s"] > 0 and r["output_tokens"] >= 1 for r in records)
    run = json.loads((out / "run.json").read_text())
    assert run["target"]["kind"] == "local" and len(run["target"]["model_hash"]) == 16
    assert run["target"]["engine"]["kv_cache_memory"] == 64 * 2**20
    assert (out / "summary.json").is_file() and (out / "report.html").is_file()
    result = CliRunner().invoke(cli, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "effective length" in result.output
    result = CliRunner().invoke(cli, args)  # resume: nothing left to do
    assert result.exit_code == 0 and "0 samples run, 4 already done" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "nope"], "unknown task 'nope'"),
        (["--lengths", "1q"], "cannot read '1q' as a length"),
        (["--endpoint", "http://127.0.0.1:9/v1", "--model-name", "m"], "cannot reach http://127.0.0.1:9/v1"),
        (["--endpoint", "localhost:8000"], "must be an http(s) URL"),
        (["--model", "/no/such/model"], "no such model directory"),
    ],
)
def test_cli_eval_bad_input(tmp_path, args, message):
    result = CliRunner().invoke(cli, ["eval", "--out", str(tmp_path / "r"), *args])
    assert result.exit_code != 0
    assert message in result.output


def test_cli_eval_length_over_the_model_limit(tmp_path, tiny_model_dir):
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--lengths",
            "8k",
            "--out",
            str(tmp_path / "r"),
            "--tasks",
            "niah_single_1",
            "--kv-cache-memory",
            "64MiB",
        ],  # fmt: skip
    )
    assert result.exit_code != 0 and "exceed the target's max_model_len of 4096" in result.output


def test_report_and_compare_refuse_a_directory_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code != 0 and "not a ctxops eval run (no run.json)" in result.output
    result = CliRunner().invoke(cli, ["compare", str(tmp_path), str(tmp_path / "missing")])
    assert result.exit_code != 0 and "not a ctxops eval run" in result.output


def _interrupted_run(tmp_path, echo_target, done=5) -> RunDir:
    run_dir = RunDir(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(run_eval(CONFIG, echo_target(fail_after=done), run_dir, show_progress=False))
    return run_dir


def _valid_jsonl(path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


def test_report_names_a_torn_last_line_and_a_corrupt_middle_line(tmp_path, echo_target):
    run_dir = _interrupted_run(tmp_path, echo_target)
    lines = run_dir.samples_path.read_text().splitlines()
    lines[2] = lines[2][:30]  # a corrupt line in the middle
    run_dir.samples_path.write_text("\n".join(lines) + '\n{"task": "vt", "leng')  # and a torn tail
    result = CliRunner().invoke(cli, ["report", str(run_dir.path)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "2 lines without a sample record (line 3: not JSON" in text
    assert "line 6: cut short (the run stopped mid-write)" in text
    assert "leaves their samples out; rerun the same `ctxops eval` command" in text
    summary = json.loads(run_dir.file("summary.json").read_text())
    assert summary["num_samples"] == 4 and "line 3" in summary["warnings"][0]
    assert "line 6: cut short" in run_dir.file("report.html").read_text()


def test_resume_reruns_the_samples_of_bad_lines_once_and_keeps_valid_jsonl(tmp_path, echo_target):
    run_dir = _interrupted_run(tmp_path, echo_target)
    lines = run_dir.samples_path.read_bytes().split(b"\n")
    lost = json.loads(lines[1])
    lines[1] = lines[1][:25]  # corrupt in the middle: this sample must run again
    torn = json.dumps({"task": "vt", "output": "café"}, ensure_ascii=False).encode()[:-4]  # cut inside "é"
    run_dir.samples_path.write_bytes(b"\n".join(lines[:5]) + b"\n" + torn)
    target = echo_target()
    outcome = asyncio.run(run_eval(CONFIG, target, run_dir, show_progress=False))
    assert outcome.skipped == 4 and outcome.done == 8 and target.calls == 8
    assert len(outcome.warnings) == 1
    assert "2 lines without a sample record (line 2: not JSON" in outcome.warnings[0]
    assert "line 6: cut short" in outcome.warnings[0] and "run again" in outcome.warnings[0]
    records = _valid_jsonl(run_dir.samples_path)
    assert len(records) == 12 and len({record_key(r) for r in records}) == 12
    assert record_key(lost) in {record_key(r) for r in records}
    assert (
        run_dir.file("samples.rejected.txt").read_bytes() == lines[1] + b"\n" + torn + b"\n"
    )  # nothing lost
    again = asyncio.run(run_eval(CONFIG, echo_target(), run_dir, show_progress=False))
    assert again.done == 0 and again.warnings == []


def test_a_last_record_missing_only_its_newline_is_kept(tmp_path, echo_target):
    run_dir = _interrupted_run(tmp_path, echo_target)
    run_dir.samples_path.write_bytes(run_dir.samples_path.read_bytes().rstrip(b"\n"))
    assert len(list(run_dir.records())) == 5  # a whole record: only the newline is missing
    target = echo_target()
    outcome = asyncio.run(run_eval(CONFIG, target, run_dir, show_progress=False))
    assert outcome.skipped == 5 and target.calls == 7 and outcome.warnings == []
    assert len(_valid_jsonl(run_dir.samples_path)) == 12

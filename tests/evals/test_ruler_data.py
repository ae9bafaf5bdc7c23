from __future__ import annotations

import asyncio
import json
import re

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.evals.config import EvalConfig
from ctxops.evals.report import write_reports
from ctxops.evals.ruler_data import RulerData, RulerDataError, parse_ruler_arg
from ctxops.evals.rundir import RunDir
from ctxops.evals.runner import run_eval

# Hand-made lines in the schema of RULER's prepare.py (our own text; "<s>[U]" stands for a model template).
LINES = {
    "niah_single_1": [
        {"index": 80, "input": "<s>[U] Noise. One of the magic numbers for tall-tree is: 4412. Noise.\nWhat is it?",
         "outputs": ["4412"], "length": 150, "answer_prefix": " The magic number for tall-tree is"},
        {"index": 80, "input": "<s>[U] Noise. One of the magic numbers for red-cup is: 9981. Noise.\nWhat is it?",
         "outputs": ["9981"], "length": 150, "answer_prefix": " The magic number for red-cup is"},
        {"index": 12, "input": "<s>[U] One of the magic numbers for wet-sand is: 1234. Noise.\nWhat is it?",
         "outputs": ["1234"], "length": 150, "answer_prefix": " The magic number for wet-sand is",
         "token_position_answer": 7},
    ],
    "vt": [
        {"index": 0, "input": "<s>[U] VAR AAAAA = 55555 VAR BBBBB = VAR AAAAA\nQuestion: which?",
         "outputs": ["AAAAA", "BBBBB"], "length": 60, "answer_prefix": " Answer: 2 variables:",
         "others": {"id": "vt-0"}, "truncation": 3},
        {"index": 1, "input": "<s>[U] VAR CCCCC = 11111 VAR DDDDD = VAR CCCCC\nQuestion: which?",
         "outputs": ["CCCCC", "DDDDD"], "length": 60, "answer_prefix": " Answer: 2 variables:"},
    ],
    "qa_1": [
        {"index": 0, "input": "<s>[U] Document 1: The river is wide.\nQuestion: How is the river?",
         "outputs": ["wide", "very wide"], "length": 50, "answer_prefix": " Answer:"},
        {"index": 1, "input": "<s>[U] Document 1: The hill is steep.\nQuestion: How is the hill?",
         "outputs": ["steep"], "length": 50, "answer_prefix": " Answer:"},
    ],
}  # fmt: skip
# What the "model" answers per (task, line): control characters, case, repeats, partial answers, numbers inside
# longer numbers, aliases.
ANSWERS = {
    ("niah_single_1", 1): "  4412\x00 ",  # found: the control character only ends the text
    ("niah_single_1", 2): "99\x0781",  # RULER turns \x07 into a newline: "99\n81" does not contain 9981
    ("niah_single_1", 3): "51234567",  # a number inside a longer number counts (substring)
    ("vt", 1): "aaaaa aaaaa",  # case-insensitive, repeated, one of two: 0.5
    ("vt", 2): "CCCCC\tDDDDD",  # a tab becomes a newline: both found
    ("qa_1", 1): "Very wide.",  # one alias is enough
    ("qa_1", 2): "flat",
}


def ruler_dir(root, lines=LINES):
    for task, rows in lines.items():
        folder = root / task
        folder.mkdir(parents=True)
        (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def ruler_evaluate(pred_file, task) -> float:
    """RULER's evaluate.py on one prediction file, restated: its cleaning, its metric, rounded to 2 decimals."""
    rows = [json.loads(line) for line in pred_file.read_text().splitlines()]
    total = 0.0
    for row in rows:
        pred = re.sub(r"[\x00-\x1f]", "\n", row["pred"].strip()).strip().lower()
        found = [r.lower() in pred for r in row["outputs"]]
        total += max(found) if task.startswith("qa") else sum(found) / len(found)
    return round(100 * total / len(rows), 2)


def test_ruler_data_runs_once_writes_predictions_and_scores_as_ruler(tmp_path, echo_target):
    data = RulerData.load((f"4096={ruler_dir(tmp_path / 'data')}",))
    assert data.tasks == ("niah_single_1", "vt", "qa_1") and data.lengths == (4096,)
    config = EvalConfig(
        tasks=data.tasks, lengths=data.lengths, samples=3, ruler_data=(f"4096={tmp_path / 'data'}",)
    )
    target = echo_target(answer=lambda s: ANSWERS[(s.spec.task, s.spec.seed)])
    run_dir = RunDir(tmp_path / "run")
    outcome = asyncio.run(run_eval(config, target, run_dir, show_progress=False, source=data))
    assert outcome.done == 7 and target.calls == 7
    summary = write_reports(run_dir)
    for task, rows in LINES.items():
        pred_file = run_dir.path / "ruler" / f"{task}.jsonl"
        preds = [json.loads(line) for line in pred_file.read_text().splitlines()]
        assert [p["index"] for p in preds] == [r["index"] for r in rows]  # file order, duplicate index kept
        assert [p["input"] for p in preds] == [r["input"] for r in rows]
        assert set(preds[0]) == {"index", "pred", "input", "outputs", "others", "truncation", "length"}
        ours = summary["cells"][task]["4096"]["score"]
        assert round(ours, 2) == ruler_evaluate(pred_file, task)
    assert summary["cells"]["niah_single_1"]["4096"]["score"] == pytest.approx(200 / 3)
    assert summary["cells"]["vt"]["4096"]["score"] == 75.0
    vt = [json.loads(line) for line in (run_dir.path / "ruler" / "vt.jsonl").read_text().splitlines()]
    assert vt[0]["others"] == {"id": "vt-0"} and vt[0]["truncation"] == 3 and vt[1]["truncation"] == -1
    assert summary["average"]["ruler"] is False and "qa_2" in summary["average"]["missing_ruler_tasks"]
    again = asyncio.run(run_eval(config, echo_target(), run_dir, show_progress=False))
    assert again.done == 0 and again.skipped == 7


def test_a_ruler_sample_is_sent_verbatim(tmp_path):
    data = RulerData.load((f"2048={ruler_dir(tmp_path / 'data')}",))
    sample = data.build(data.plan()[3])
    assert (
        sample.verbatim and sample.verbatim_text == LINES["vt"][0]["input"] + LINES["vt"][0]["answer_prefix"]
    )
    assert sample.max_tokens == 30 and sample.input_tokens == 30  # RULER's budget; length minus it
    assert data.build(data.plan()[5]).metric.value == "string_match_part"
    assert [s.depth for s in data.plan()[:3]] == [None, None, 0.3]  # 7 of 22 input tokens, in 5% steps


def test_length_from_the_path_or_the_argument(tmp_path):
    assert parse_ruler_arg("8192=some/dir")[0] == 8192
    assert parse_ruler_arg("results/llama/synthetic/16384/data")[0] == 16384
    with pytest.raises(RulerDataError, match="write it as LENGTH=DIR"):
        parse_ruler_arg("results/data")


def test_bad_ruler_data_is_named_by_file_and_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RulerDataError, match="no RULER task folders.*niah_single_1/validation.jsonl"):
        RulerData.load((f"4096={tmp_path / 'empty'}",))
    ruler_dir(tmp_path / "unknown", {"niah_single_9": LINES["vt"]})
    with pytest.raises(
        RulerDataError, match=r"niah_single_9/validation.jsonl: unknown RULER task 'niah_single_9'"
    ):
        RulerData.load((f"4096={tmp_path / 'unknown'}",))
    rows = [LINES["vt"][0], {k: v for k, v in LINES["vt"][1].items() if k != "outputs"}]
    ruler_dir(tmp_path / "missing", {"vt": rows})
    with pytest.raises(RulerDataError, match=r"vt/validation.jsonl:2: no 'outputs'"):
        RulerData.load((f"4096={tmp_path / 'missing'}",))
    ruler_dir(tmp_path / "broken", {"cwe": LINES["vt"]})
    (tmp_path / "broken" / "cwe" / "validation.jsonl").write_text('{"index": 0,\n')
    with pytest.raises(RulerDataError, match=r"cwe/validation.jsonl:1: not JSON"):
        RulerData.load((f"4096={tmp_path / 'broken'}",))


def test_cli_ruler_data_in_process(tmp_path, tiny_model_dir):
    data = ruler_dir(tmp_path / "1024" / "data")
    out = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--ruler-data", str(data), "--out", str(out),
            "--kv-cache-memory", "64MiB", "--no-progress", "--latency-samples", "2", "--concurrency", "4"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "7 samples run" in result.output and "RULER prediction files" in result.output
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 7 and all(r["length"] == 1024 and r["concurrency"] == 4 for r in records)
    assert sorted((r["task"], r["seed"]) for r in records) == sorted(
        (task, i) for task, rows in LINES.items() for i in range(1, len(rows) + 1)
    )
    latency = [json.loads(line) for line in (out / "latency.jsonl").read_text().splitlines()]
    assert len(latency) == 2 and all(r["concurrency"] == 1 for r in latency)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["latency"]["1024"]["concurrency"] == [4] and summary["latency_solo"]["1024"][
        "concurrency"
    ] == [1]
    assert "ruler_data" in json.loads((out / "run.json").read_text())["identity"]
    for task in LINES:
        assert (out / "ruler" / f"{task}.jsonl").is_file()
    html = (out / "report.html").read_text()
    assert "concurrency" in html and "not RULER's 13-task average" in html
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "0 samples run, 7 already done" in result.output


def test_cli_ruler_data_bad_directory(tmp_path):
    (tmp_path / "d").mkdir()
    result = CliRunner().invoke(
        cli, ["eval", "--ruler-data", f"4096={tmp_path / 'd'}", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "no RULER task folders" in result.output

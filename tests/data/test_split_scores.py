import json

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.data.items import item_id, load_items
from ctxops.data.split_scores import SplitError, split_scores
from ctxops.evals.rundir import RunDir


def make_run(path, scores):
    """samples.jsonl records with the fields a split reads (the runner writes more)."""
    run = RunDir(path)
    for seed, score in enumerate(scores, 42):
        run.append({"task": "niah_single_1", "length": 512, "depth": 0.5, "seed": seed, "score": score})
    return run


def write_findings(path, ids):
    path.mkdir(parents=True, exist_ok=True)
    (path / "findings.jsonl").write_text(
        "".join(json.dumps({"id": i, "kinds": ["ngram"]}) + "\n" for i in ids)
    )


def test_scores_split_into_clean_and_dirty_with_intervals(tmp_path):
    run = make_run(tmp_path / "run", [1.0] * 10 + [0.0] * 10)
    write_findings(tmp_path / "c", [item_id("niah_single_1", 512, 0.5, seed) for seed in range(42, 52)])
    result = split_scores(run, tmp_path / "c")
    row = result["tasks"]["niah_single_1"]
    assert row["dirty"]["n"] == 10 and row["dirty"]["score"] == 100.0
    assert row["clean"]["n"] == 10 and row["clean"]["score"] == 0.0
    assert row["clean"]["ci95"][1] < 35  # Wilson upper bound for 0/10 is 27.8
    assert row["dirty_minus_clean"] == 100.0 and row["ci95"] == [100.0, 100.0]
    assert row["mann_whitney_p"] < 0.001
    assert list(result["tasks"]) == ["niah_single_1", "all"]
    assert (tmp_path / "run" / "contamination_split.json").is_file()


def test_perturbed_records_of_one_item_are_split_by_variant(tmp_path):
    run = RunDir(tmp_path / "run")
    base = {"task": "niah_single_1", "length": 512, "depth": 0.5, "seed": 42}
    run.append({**base, "score": 1.0})
    run.append({**base, "variant": "noise=typos", "score": 0.0})
    run.append({**base, "variant": "noise=shuffle", "score": 0.0})
    # only the typo variant's text sat in the corpus: its two siblings stay clean
    write_findings(tmp_path / "c", [item_id("niah_single_1", 512, 0.5, 42, "noise=typos")])
    row = split_scores(run, tmp_path / "c")["tasks"]["niah_single_1"]
    assert row["dirty"]["n"] == 1 and row["dirty"]["score"] == 0.0
    assert row["clean"]["n"] == 2 and row["clean"]["score"] == 50.0


def test_findings_of_another_run_are_refused(tmp_path):
    run = make_run(tmp_path / "run", [1.0, 0.0])
    write_findings(tmp_path / "c", ["other/1/0.5/1"])
    with pytest.raises(SplitError, match="none of the 1 dirty ids"):
        split_scores(run, tmp_path / "c")
    with pytest.raises(SplitError, match="not found"):
        split_scores(run, tmp_path / "missing")


def test_eval_then_contamination_then_report_split(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    args = ["eval", "--model", str(tiny_model_dir), "--tasks", "niah_single_1", "--lengths", "512",
            "--samples", "3", "--out", str(run), "--kv-cache-memory", "64MiB", "--no-progress"]  # fmt: skip
    assert CliRunner().invoke(cli, args).exit_code == 0
    items = load_items(str(run))  # rebuilt with the run's tokenizer and checked against its prompt hashes
    expected = {item_id("niah_single_1", 512, d, s) for d, s in ((0.0, 42), (0.25, 43), (0.5, 44))}
    assert {i.id for i in items} == expected
    corpus = tmp_path / "leak.txt"
    corpus.write_text("A scraped page.\n" + items[1].text + "\nThe end.\n")
    out = tmp_path / "contamination"
    result = CliRunner().invoke(cli, ["data", "contamination", "--eval", str(run), "--corpus", str(corpus),
                                      "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["id"] for line in (out / "findings.jsonl").read_text().splitlines()] == [
        items[1].id
    ]
    result = CliRunner().invoke(cli, ["report", str(run), "--contamination", str(out)])
    assert result.exit_code == 0, result.output
    assert "clean vs dirty" in result.output and "n=2; dirty" in result.output and "n=1" in result.output

    # the eval itself checks its items: rerun (resumes, no sample redone) with --contamination-corpus
    train = tmp_path / "train"
    train.mkdir()
    (train / "page.txt").write_text("Scraped:\n" + items[2].text + "\n")
    both = CliRunner().invoke(cli, [*args, "--contamination", str(out), "--contamination-corpus", str(train)])
    assert both.exit_code == 2 and "not both" in both.output
    missing = CliRunner().invoke(cli, [*args, "--contamination-corpus", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    result = CliRunner().invoke(cli, [*args, "--contamination-corpus", str(train)])
    assert result.exit_code == 0, result.output
    assert "contamination: 1 of 3 items dirty" in result.output and "clean vs dirty" in result.output
    findings = (run / "contamination" / "findings.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in findings] == [items[2].id]
    split = json.loads((run / "contamination_split.json").read_text())
    assert split["tasks"]["all"]["dirty"]["n"] == 1 and split["tasks"]["all"]["clean"]["n"] == 2
    result = CliRunner().invoke(cli, ["report", str(run)])  # finds RUN/contamination by itself
    assert result.exit_code == 0 and "n=2; dirty" in result.output

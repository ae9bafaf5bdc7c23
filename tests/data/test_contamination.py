import json

import numpy as np
import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.data.contamination import ContaminationConfig, ContaminationScan, run_scan
from ctxops.data.corpus import CorpusError
from ctxops.data.items import EvalItem, ItemsError, load_items
from ctxops.data.ngrams import text_ngrams
from ctxops.data.outdir import OutDir, OutDirError
from ctxops.evals.rundir import RunDir
from planted_corpus import make_planted


def scan_findings(items, corpus, out, workers=1, **settings):
    scan = ContaminationScan(items, ContaminationConfig(**settings))
    run_scan(scan, corpus, OutDir(out), workers=workers)
    return {f["id"]: f for f in scan.findings()}


def rates(planted, findings, kind):
    found = {
        k: sum(kind in findings.get(i, {}).get("kinds", []) for i in ids)
        for k, ids in planted.planted.items()
    }
    false = sum(kind in findings.get(i, {}).get("kinds", []) for i in planted.negatives)
    return found, false


def check_planted(tmp_path, per_kind, negatives):
    planted = make_planted(tmp_path, per_kind=per_kind, negatives=negatives)
    findings = scan_findings(load_items(str(planted.items)), [planted.corpus], tmp_path / "out")
    near, near_false = rates(planted, findings, "near_dup")
    ngram, _ = rates(planted, findings, "ngram")
    recall = sum(near.values()) / sum(len(ids) for ids in planted.planted.values())
    print(
        f"near-dup found {near}, recall {recall:.3f}, false positives {near_false}/{len(planted.negatives)}"
    )
    assert ngram["exact"] == per_kind and ngram["buried"] == per_kind  # 13-grams find every exact copy
    assert recall >= 0.95
    assert near_false <= 0.01 * len(planted.negatives)


def test_planted_copies_edits_and_buried_passages_are_found(tmp_path):
    check_planted(tmp_path, per_kind=3, negatives=60)


def test_worker_processes_find_what_one_process_finds(tmp_path):
    planted = make_planted(tmp_path, per_kind=2, negatives=20)
    items = load_items(str(planted.items))
    one = scan_findings(items, [planted.corpus], tmp_path / "one")
    two = scan_findings(items, [planted.corpus], tmp_path / "two", workers=2)
    assert one and two == one  # same items, kinds, counts and places, in the same order
    state = json.loads((tmp_path / "two" / "state.json").read_text())
    assert state["counts"] == json.loads((tmp_path / "one" / "state.json").read_text())["counts"]


@pytest.mark.slow
def test_planted_set_of_the_readme(tmp_path):
    # the stated set: 40 items per kind (exact, 5/10/15/20% word edits, buried in a 50K-word document), 1,000 clean
    check_planted(tmp_path, per_kind=40, negatives=1000)


def test_a_match_that_holds_the_gold_answer_is_told_apart(tmp_path):
    filler = (
        "the ledger of every shipment was kept by the harbor master for nearly twenty years without a gap"
    )
    items = [
        EvalItem("a", "t", f"{filler}. The secret code for amber-fox is: 7341902. {filler}", ("7341902",)),
        EvalItem("b", "t", f"{filler}. The secret code for blue-owl is: 5550123. {filler}", ("5550123",)),
        EvalItem("c", "t", "a third item, so that the filler of two is not boilerplate", ("x",)),
    ]
    (tmp_path / "c.txt").write_text(
        f"notes: {filler}. The secret code for amber-fox is: 7341902. end\n{filler}\n"
    )
    scan = ContaminationScan(items, ContaminationConfig(boilerplate_share=1.0))
    run_scan(scan, [tmp_path / "c.txt"], OutDir(tmp_path / "out"))
    found = {f["id"]: f["ngram"] for f in scan.findings()}
    assert found["a"]["with_answer"] > 0
    assert found["b"]["matched"] > 0 and found["b"]["with_answer"] == 0  # shared filler only


def test_boilerplate_shared_by_every_item_never_makes_an_item_dirty(tmp_path):
    template = "Read the text below and answer the question at the end of it with one short word only. "
    items = [
        EvalItem(f"i{i}", "task", template + f"item {i} speaks of topic number {i * 7} today")
        for i in range(6)
    ]
    (tmp_path / "c.txt").write_text("A training page that quotes the template: " + template * 3)
    scan = ContaminationScan(items, ContaminationConfig())
    run_scan(scan, [tmp_path / "c.txt"], OutDir(tmp_path / "out"))
    assert scan.findings() == []
    assert scan.counts["boilerplate_hits"] > 0
    # a document that holds an item and the template: the item is dirty, and every boilerplate 13-gram is counted
    page = "Another page. " + template * 2 + items[3].text + " and more words after it."
    (tmp_path / "d.jsonl").write_text(json.dumps({"text": page}) + "\n")
    scan = ContaminationScan(items, ContaminationConfig())
    run_scan(scan, [tmp_path / "d.jsonl"], OutDir(tmp_path / "out2"))
    assert [f["id"] for f in scan.findings()] == ["i3"]
    expected = np.isin(text_ngrams(page, 13), scan.index.boilerplate).sum()
    assert scan.counts["boilerplate_hits"] == expected > 0


class Killed(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_run_resumes_and_matches_a_fresh_run(tmp_path, workers):
    planted = make_planted(tmp_path, per_kind=1, negatives=5, buried_doc_words=3000)
    items = load_items(str(planted.items))
    config = ContaminationConfig(checkpoint_s=0.0)  # checkpoint after every document
    seen = []

    def kill_after_four(chars):
        seen.append(chars)
        if len(seen) == 4:
            raise Killed

    with pytest.raises(Killed):
        run_scan(
            ContaminationScan(items, config),
            [planted.corpus],
            OutDir(tmp_path / "out"),
            kill_after_four,
            workers,
        )
    assert not (tmp_path / "out" / "findings.jsonl").exists()  # no report until the scan finishes
    resumed = ContaminationScan(items, config)
    assert run_scan(resumed, [planted.corpus], OutDir(tmp_path / "out"), workers=workers)
    assert resumed.counts["documents"] == len(planted.corpus.read_text().splitlines())
    assert {f["id"]: f for f in resumed.findings()} == scan_findings(
        items, [planted.corpus], tmp_path / "fresh"
    )


def test_a_checkpoint_of_other_inputs_is_refused(tmp_path):
    (tmp_path / "c.txt").write_text("one two three four five six seven\n")
    items = [EvalItem("a", "t", "one two three four five six seven eight")]
    run_scan(ContaminationScan(items, ContaminationConfig()), [tmp_path / "c.txt"], OutDir(tmp_path / "out"))
    with pytest.raises(OutDirError, match="other inputs"):
        run_scan(
            ContaminationScan(items, ContaminationConfig(ngram=5)),
            [tmp_path / "c.txt"],
            OutDir(tmp_path / "out"),
        )


def test_empty_corpus_is_refused_and_leaves_nothing(tmp_path):
    (tmp_path / "empty.txt").write_text("   \n")
    with pytest.raises(CorpusError, match="no documents"):
        run_scan(ContaminationScan([EvalItem("a", "t", "some words")], ContaminationConfig()),
                 [tmp_path / "empty.txt"], OutDir(tmp_path / "out"))  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_binary_file_mid_corpus_stops_the_run_with_no_results_written(tmp_path):
    (tmp_path / "a.txt").write_text(
        "one two three four five six seven eight nine ten eleven twelve thirteen\n"
    )
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 64)
    items = [EvalItem("a", "t", "one two three four five six seven eight nine ten eleven twelve thirteen")]
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        with pytest.raises(CorpusError, match="b.bin: not UTF-8"):
            run_scan(ContaminationScan(items, ContaminationConfig()), [tmp_path / "a.txt", tmp_path / "b.bin"],
                     OutDir(out), workers=workers)  # fmt: skip
        assert not (out / "findings.jsonl").exists() and not (out / "report.json").exists()


def test_an_eval_run_without_samples_is_refused(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_json("run.json", {"target": {"kind": "local", "model": "builtin"}})
    with pytest.raises(ItemsError, match="no finished samples"):
        load_items(str(tmp_path / "run"))
    result = CliRunner().invoke(cli, ["data", "contamination", "--eval", str(tmp_path / "run"), "--corpus",
                                      str(tmp_path / "run" / "run.json"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 1 and "no finished samples" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("ngram", 3), ("near_dup", 1.5), ("window", 5), ("min_matches", 0), ("checkpoint_s", -1.0)],
)
def test_bad_settings_are_refused(setting, value):
    with pytest.raises(ValueError, match=setting):
        ContaminationConfig(**{setting: value})


def test_cli_writes_findings_and_report(tmp_path):
    planted = make_planted(tmp_path, per_kind=1, negatives=5, buried_doc_words=3000)
    out = tmp_path / "out"
    args = [
        "data",
        "contamination",
        "--eval",
        str(planted.items),
        "--corpus",
        str(planted.corpus),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    planted_ids = {i for ids in planted.planted.values() for i in ids}
    assert planted_ids <= {f["id"] for f in findings}
    assert "| passages |" in (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["items"] == 11 and report["dirty"] >= 6


def test_cli_errors_are_clear(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "a", "text": "hello there"}\n')
    result = CliRunner().invoke(cli, ["data", "contamination", "--eval", str(items), "--corpus",
                                      str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 1 and "no such file" in result.output
    result = CliRunner().invoke(cli, ["data", "contamination", "--eval", "nonsense", "--corpus", str(items),
                                      "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 1 and "TASKS:LENGTHS" in result.output
    result = CliRunner().invoke(cli, ["data", "contamination", "--eval", str(items), "--corpus", str(items),
                                      "--near-dup", "2", "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2 and "near_dup" in result.output

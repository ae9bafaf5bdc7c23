"""`ctxops data dedup` and `ctxops data pii` killed or interrupted mid-run: the rerun continues and ends as a fresh run."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.data.journal import PART
from planted_corpus import edit, prose_words

FILES, DOCS = 30, 8  # enough work (about 1 s) that the first commit comes long before the end


def write_corpus(root):
    """FILES JSONL files of DOCS documents: exact and near copies across files, and personal data in some."""
    rng = random.Random(7)
    bases = [prose_words(seed, 200) for seed in range(20)]
    for f in range(FILES):
        lines = []
        for d in range(DOCS):
            base = bases[(f * DOCS + d) % len(bases)]
            text = " ".join(edit(base, 0.02, rng, ["lantern", "harbor"]) if d % 3 else base)
            if d % 4 == 0:
                text += f" Write to user{f}.{d}@example.com or call +1 415 555 {2600 + d:04d}."
            lines.append(json.dumps({"id": f"f{f}d{d}", "text": text}))
        (root / f"part{f:02d}.jsonl").write_text("\n".join(lines) + "\n")


def run_and_break(args, sig, out):
    """Start the command in a real process and send ``sig`` once its first checkpoint is on disk."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ctxops", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (out / "state.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.005)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert not (out / "report.json").exists(), "the run ended before it was stopped; make the corpus larger"
    return proc.returncode, stdout + stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root)
    return root


def outputs(out):
    names = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "report.json")
    report = json.loads((out / "report.json").read_text())
    report.pop("seconds", None)
    return names, {n: (out / n).read_bytes() for n in names}, report


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_dedup_resumes_after_a_kill_or_ctrl_c(corpus, tmp_path, sig):
    out = tmp_path / "out"
    code, output = run_and_break(["data", "dedup", str(corpus), "--out", str(out)], sig, out)
    if sig == signal.SIGINT:
        assert code == 130 and "rerun the same command to continue" in output
    else:
        assert code == -signal.SIGKILL
    done = json.loads((out / "state.json").read_text())["done"]
    assert 0 < sum(done.values()) < FILES * DOCS  # finished work is on disk, and there is work left
    other = CliRunner().invoke(cli, ["data", "dedup", str(corpus), "--threshold", "0.9", "--out", str(out)])
    assert other.exit_code == 1 and "other inputs or settings" in other.output
    result = CliRunner().invoke(cli, ["data", "dedup", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "resumed from the checkpoint" in result.output
    fresh = tmp_path / "fresh"
    assert CliRunner().invoke(cli, ["data", "dedup", str(corpus), "--out", str(fresh)]).exit_code == 0
    assert outputs(out) == outputs(fresh)
    assert json.loads((out / "report.json").read_text())["near_duplicates"] > 0
    assert not (out / "state.json").exists() and not list(out.rglob("*" + PART))


def test_pii_resumes_after_a_kill_and_its_copies_match_a_fresh_run(corpus, tmp_path):
    out = tmp_path / "out"
    args = ["data", "pii", str(corpus), "--redact", "--out", str(out)]
    code, _ = run_and_break(args, signal.SIGKILL, out)
    assert code == -signal.SIGKILL
    assert list(out.rglob("*" + PART))  # the journal, not yet renamed into place
    assert not (out / "findings.jsonl").exists()  # no result file until the scan is complete
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "resumed from the checkpoint" in result.output
    fresh = tmp_path / "fresh"
    assert CliRunner().invoke(cli, [*args[:-1], str(fresh)]).exit_code == 0
    assert outputs(out) == outputs(fresh)
    report = json.loads((out / "report.json").read_text())
    assert report["documents"] == FILES * DOCS
    assert report["by_kind"] == {"email": FILES * 2, "phone": FILES * 2}
    assert len((out / "findings.jsonl").read_text().splitlines()) == FILES * 4


def test_pii_stopped_by_ctrl_c_says_how_to_continue(corpus, tmp_path):
    out = tmp_path / "out"
    code, output = run_and_break(["data", "pii", str(corpus), "--out", str(out)], signal.SIGINT, out)
    assert code == 130 and "rerun the same command to continue" in output
    state = json.loads((out / "state.json").read_text())
    assert 0 < state["documents"] < FILES * DOCS


def test_pii_that_failed_after_its_last_commit_writes_only_the_report_on_rerun(corpus, tmp_path):
    out = tmp_path / "out"
    (out / "report.json").mkdir(parents=True)  # the report cannot be written: the run fails at its very end
    args = ["data", "pii", str(corpus), "--out", str(out)]
    failed = CliRunner().invoke(cli, args)
    assert failed.exit_code == 1 and (out / "findings.jsonl").is_file() and (out / "state.json").is_file()
    (out / "report.json").rmdir()
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "resumed from the checkpoint" in result.output
    assert json.loads((out / "report.json").read_text())["documents"] == FILES * DOCS
    assert len((out / "findings.jsonl").read_text().splitlines()) == FILES * 4
    assert not (out / "state.json").exists()

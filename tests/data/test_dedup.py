import json
import random

from click.testing import CliRunner

from ctxops.cli.main import cli
from planted_corpus import edit, prose_words


def test_exact_and_near_duplicates_are_clustered_and_one_of_each_kept(tmp_path):
    rng = random.Random(0)
    base = prose_words(1, 400)
    docs = [
        {"id": "a", "text": " ".join(base)},
        {"id": "a-copy", "text": " ".join(base).upper() + "!"},  # exact after normalization
        {"id": "a-near", "text": " ".join(edit(base, 0.01, rng, ["lantern"]))},  # 1% of words edited
        {"id": "b", "text": " ".join(prose_words(2, 400))},
        {"id": "c", "text": " ".join(prose_words(3, 400))},
    ]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["data", "dedup", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    clusters = [json.loads(line) for line in (out / "clusters.jsonl").read_text().splitlines()]
    assert len(clusters) == 1
    assert clusters[0]["kept"] == f"{corpus}:a"
    assert {(d["id"], d["kind"]) for d in clusters[0]["duplicates"]} == {
        (f"{corpus}:a-copy", "exact"),
        (f"{corpus}:a-near", "near"),
    }
    assert (out / "kept.txt").read_text().split() == [f"{corpus}:{i}" for i in ("a", "b", "c")]
    report = json.loads((out / "report.json").read_text())
    assert report["documents"] == 5 and report["kept"] == 3


def test_dedup_refuses_bad_threshold_and_empty_input(tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    result = CliRunner().invoke(
        cli, ["data", "dedup", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "no documents" in result.output
    assert not (tmp_path / "o").exists()
    result = CliRunner().invoke(cli, ["data", "dedup", str(tmp_path / "empty.txt"), "--threshold", "0",
                                      "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2 and "threshold" in result.output

import gzip
import json

from click.testing import CliRunner

from ctxops.cli.main import cli


def test_counts_findings_and_redacted_copies(tmp_path):
    (tmp_path / "notes.txt.gz").write_bytes(gzip.compress(b"Mail ann@example.com, call (415) 555-2671.\n"))
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"id": "r1", "text": "SSN 123-45-6789 and ann@example.com"}) + "\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["data", "pii", str(tmp_path), "--redact", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["by_kind"] == {"email": 2, "phone": 1, "us_ssn": 1}
    assert report["documents"] == 2 and report["documents_with_pii"] == 2
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    assert {
        "source": str(tmp_path / "rows.jsonl"),
        "doc": "r1",
        "kind": "us_ssn",
        "start": 4,
        "end": 15,
    } in findings
    assert "ann@example.com" not in (out / "findings.jsonl").read_text()  # places, never the values
    assert (out / "redacted" / "notes.txt").read_text() == "Mail <EMAIL>, call <PHONE>.\n"
    assert json.loads((out / "redacted" / "rows.jsonl").read_text()) == {
        "id": "r1",
        "text": "SSN <US_SSN> and <EMAIL>",
    }
    assert not list(out.rglob("*.tmp"))


def test_pii_errors(tmp_path):
    (tmp_path / "a.txt").write_text("nothing here\n")
    result = CliRunner().invoke(cli, ["data", "pii", str(tmp_path / "a.txt"), "--redact"])
    assert result.exit_code == 2 and "--redact needs --out" in result.output
    result = CliRunner().invoke(cli, ["data", "pii", str(tmp_path / "a.txt"), "--region", "XX"])
    assert result.exit_code == 1 and "ISO 3166" in result.output
    (tmp_path / "b.bin").write_bytes(bytes(range(256)))
    result = CliRunner().invoke(cli, ["data", "pii", str(tmp_path / "b.bin")])
    assert result.exit_code == 1 and "not UTF-8" in result.output

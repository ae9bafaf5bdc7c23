import pytest
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.data.card import CardError, check_license, front_matter


def test_spdx_expressions_are_validated_and_mapped():
    assert check_license("apache-2.0").spdx == "Apache-2.0"
    assert check_license("Apache-2.0").hf_id == "apache-2.0"
    assert check_license("MIT OR Apache-2.0").hf_id == "other"
    assert check_license("LicenseRef-llama3.1").warnings  # custom: read it yourself
    for bad in ("Foo-1.0", "Apache-2.0 AND", "MIT OR Bar-2"):
        with pytest.raises(CardError, match="not a valid SPDX expression"):
            check_license(bad)


def test_license_conflicts_with_the_stated_use_are_warned():
    assert any("commercial" in w for w in check_license("CC-BY-NC-4.0").warnings)
    assert not any("commercial" in w for w in check_license("CC-BY-NC-4.0", commercial=False).warnings)
    assert any("derivatives" in w for w in check_license("CC-BY-ND-4.0").warnings)
    assert any("share-alike" in w for w in check_license("CC-BY-SA-4.0").warnings)
    assert check_license("MIT").warnings == ()


def test_card_front_matter_hashes_lengths_and_verify(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text(
        '{"id": "1", "text": "short"}\n{"id": "2", "text": "' + "word " * 3000 + '"}\n'
    )
    card = tmp_path / "CARD.md"
    args = ["data", "card", str(data), "--license", "CC-BY-SA-4.0", "--source", "https://example.org/a",
            "--retrieved", "2026-01-02", "--effective-length", "1k", "--out", str(card)]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "share-alike" in result.output
    meta = front_matter(card.read_text())
    assert meta["license"] == "cc-by-sa-4.0" and meta["size_categories"] == ["n<1K"]
    info = meta["ctxops"]
    assert info["sources"] == [{"url": "https://example.org/a", "retrieved": "2026-01-02"}]
    assert info["files"][0]["path"] == "data/a.jsonl" and len(info["files"][0]["sha256"]) == 64
    assert info["token_lengths"]["share_beyond_effective_length"] == 0.5  # the 3,000-word document
    result = CliRunner().invoke(cli, ["data", "verify", str(card)])
    assert result.exit_code == 0 and "every file matches" in result.output
    (data / "a.jsonl").write_text('{"id": "1", "text": "changed"}\n')
    result = CliRunner().invoke(cli, ["data", "verify", str(card)])
    assert result.exit_code == 1 and "sha256 differs" in result.output


def test_card_refuses_a_wrong_spdx_id_and_writes_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("text\n")
    card = tmp_path / "CARD.md"
    args = [
        "data",
        "card",
        str(tmp_path / "a.txt"),
        "--license",
        "Apache2",
        "--source",
        "x",
        "--out",
        str(card),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "not a valid SPDX expression" in result.output
    assert not card.exists()


def test_verify_refuses_a_file_that_is_not_a_card(tmp_path):
    (tmp_path / "README.md").write_text("# hello\n")
    result = CliRunner().invoke(cli, ["data", "verify", str(tmp_path / "README.md")])
    assert result.exit_code == 1 and "no YAML front matter" in result.output

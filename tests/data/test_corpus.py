import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from ctxops.data.corpus import CorpusError, iter_documents, iter_file


def test_text_gzip_zstd_give_the_same_documents(tmp_path):
    text = "first line of the corpus\nsecond line here\n"
    (tmp_path / "a.txt").write_text(text)
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "c.zst").write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    docs = list(iter_documents([tmp_path]))
    assert [d.text for d in docs] == [text, text, text]
    assert [d.doc_id for d in docs] == ["#0", "#0", "#0"]


def test_text_is_cut_into_blocks_at_line_ends_in_bounded_memory(tmp_path):
    lines = [f"line number {i} with some words" for i in range(1000)]
    (tmp_path / "big.txt").write_text("\n".join(lines) + "\n")
    docs = list(iter_file(tmp_path / "big.txt", block_chars=1000))
    assert len(docs) > 20
    assert all(len(d.text) <= 1000 for d in docs)
    assert all(d.text.endswith("\n") for d in docs)
    assert "".join(d.text for d in docs) == "\n".join(lines) + "\n"
    assert docs[1].doc_id == f"#{len(docs[0].text)}"


def test_jsonl_ids_and_line_numbers(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    rows = [{"id": "x", "text": "hello"}, {"text": "world"}]
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert [(d.doc_id, d.text) for d in iter_file(path)] == [("x", "hello"), ("2", "world")]


def test_parquet_text_column_streamed_by_batch(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["alpha text", "beta text"]}), path)
    assert [(d.doc_id, d.text) for d in iter_file(path)] == [("a", "alpha text"), ("b", "beta text")]


def test_parquet_without_text_column_is_refused(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(CorpusError, match="no 'text' column"):
        list(iter_file(path))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bin.dat", bytes(range(256)) * 4, "not UTF-8"),
        ("nul.txt", b"text\x00more text", "NUL bytes"),
        ("bad.jsonl", b'{"text": "ok"}\nnot json\n', "bad.jsonl:2: not JSON"),
        ("notext.jsonl", b'{"body": "x"}\n', "string 'text' field"),
        ("broken.gz", b"\x1f\x8b\x08\x00garbage", "cannot be read"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CorpusError, match=message):
        list(iter_file(tmp_path / name))


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        list(iter_documents([tmp_path / "nope.txt"]))

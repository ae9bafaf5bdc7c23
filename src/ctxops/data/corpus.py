"""Corpora as a stream of documents: text, JSONL and Parquet files, plain, gzip or zstd, read in bounded memory.

A ``.jsonl`` line is one document (its ``text`` field; ``id`` if present, else the line number); a Parquet file is
read a record batch at a time (its ``text`` column; ``id`` if present, else the row number); any other file is
text, read in blocks of at most ``block_chars`` characters cut at a line break, each block a document named
``path#offset``. So memory stays bounded by one block, one batch or one line, whatever the corpus size. A 13-gram
or window that straddles two blocks of a text file is not seen; blocks are cut at line ends, where passages rarely
continue. Compression is recognized by its magic bytes, not the suffix.

Bad input raises :class:`CorpusError` with what is wrong: a missing or unreadable path, a binary file, a JSONL line
that is not a JSON object with a string ``text``, a Parquet file without a ``text`` column. This module knows
files and formats, not n-grams.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

BLOCK_CHARS = 4_000_000  # one text block: ~700K words, ~50 MB of word hashes and n-grams in flight
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_PARQUET = b"PAR1"


class CorpusError(ValueError):
    """A corpus path cannot be read as documents."""


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a corpus: where it came from and its text."""

    source: str  # the file
    doc_id: str  # its id inside the file (JSONL/Parquet id or row, or ``#offset`` of a text block)
    text: str


def _open_binary(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(4)
    if magic.startswith(_GZIP):
        return gzip.open(path, "rb")
    if magic.startswith(_ZSTD):
        return zstandard.ZstdDecompressor().stream_reader(
            path.open("rb"), read_across_frames=True, closefd=True
        )
    return path.open("rb")


def _open_text(path: Path) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8", errors="strict", newline="")


def _format(path: Path) -> str:
    with path.open("rb") as probe:
        if probe.read(4) == _PARQUET:
            return "parquet"
    name = path.name.lower().removesuffix(".gz").removesuffix(".zst").removesuffix(".zstd")
    return "jsonl" if name.endswith((".jsonl", ".ndjson")) else "text"


def iter_documents(paths: Sequence[str | Path], block_chars: int = BLOCK_CHARS) -> Iterator[Document]:
    """Every document of every path, in order (a directory: its files, sorted, recursively)."""
    for path in expand_paths(paths):
        yield from iter_file(path, block_chars)


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """The files named by ``paths`` (directories expanded, sorted); a missing path raises CorpusError."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"{path}: no such file or directory; pass corpus files or directories")
    return files


def iter_file(path: Path, block_chars: int = BLOCK_CHARS) -> Iterator[Document]:
    """The documents of one file (see the module docstring for the formats)."""
    try:
        kind = _format(path)
        if kind == "parquet":
            yield from _parquet(path)
            return
        with _open_text(path) as handle:
            if kind == "jsonl":
                yield from _jsonl(path, handle)
            else:
                yield from _text(path, handle, block_chars)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); is it a binary file?"
        ) from exc
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise CorpusError(f"{path}: cannot be read ({exc})") from exc


def _check_text(path: Path, where: str, text: str) -> None:
    if "\x00" in text:
        raise CorpusError(
            f"{path}{where}: holds NUL bytes, so it is binary, not text; pass text, JSONL or Parquet"
        )


def _text(path: Path, handle: IO[str], block_chars: int) -> Iterator[Document]:
    offset = 0
    carry = ""
    while True:
        wanted = block_chars - len(carry)
        chunk = _read_block(handle, wanted)
        block = carry + chunk
        last = len(chunk) < wanted  # the file ends in this block
        # end a block at a line break, else at a space, so that no word is cut in two
        cut = len(block) if last else (block.rfind("\n") + 1 or block.rfind(" ") + 1 or len(block))
        block, carry = block[:cut], block[cut:]
        _check_text(path, f" (near character {offset})", block)
        if block.strip():
            yield Document(str(path), f"#{offset}", block)
        offset += len(block)
        if last:
            return


def _read_block(handle: IO[str], size: int) -> str:
    """Up to ``size`` characters (a decompressing stream may hand back less per read)."""
    pieces: list[str] = []
    wanted = size
    while wanted > 0:
        piece = handle.read(wanted)
        if not piece:
            break
        pieces.append(piece)
        wanted -= len(piece)
    return "".join(pieces)


def _jsonl(path: Path, handle: IO[str]) -> Iterator[Document]:
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(
                f"{path}:{number}: not JSON ({exc.msg}); each line must be an object with a 'text'"
            ) from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise CorpusError(
                f"{path}:{number}: a JSONL document must be an object with a string 'text' field"
            )
        yield Document(str(path), str(record.get("id", number)), record["text"])


def _parquet(path: Path) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid and OSError types
        raise CorpusError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = table.schema_arrow.names
    if "text" not in names:
        raise CorpusError(
            f"{path}: no 'text' column (columns: {', '.join(names)}); name the text column 'text'"
        )
    columns = ["text", "id"] if "id" in names else ["text"]
    row = 0
    for batch in table.iter_batches(batch_size=1024, columns=columns):
        texts = batch.column("text").to_pylist()
        ids = batch.column("id").to_pylist() if "id" in columns else range(row, row + len(texts))
        for doc_id, text in zip(ids, texts, strict=True):
            if text:
                yield Document(str(path), str(doc_id), text)
        row += len(texts)

"""Personal data in corpora: counts by kind and where each finding is, and a redacted copy on request.

Every document is searched with the guard's detectors (:func:`ctxops.detect.pii.find_pii`). Findings record the
file, the document and the character span, never the value itself, so the report can be shared. With ``redact``,
each input file gets a copy under ``OUT/redacted/``: text files as text (their blocks joined back in order), JSONL
and Parquet files as JSONL of ``{"id", "text"}``, every finding replaced by ``<KIND>``. Every output file is written
to a temporary name and renamed when complete. This module knows documents and findings, not the detectors' rules.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from ctxops.data.corpus import expand_paths, iter_file
from ctxops.data.outdir import OutDir
from ctxops.detect.pii import PiiKind, find_pii, redact

FINDINGS_FILE = "findings.jsonl"
REDACTED_DIR = "redacted"


class PiiScan:
    """Counts and finding places accumulated over documents."""

    def __init__(self, region: str = "US", kinds: Sequence[PiiKind] | None = None) -> None:
        find_pii("", region=region)  # an unknown region fails here, before any file is read
        self.region, self.kinds = region, kinds
        self.counts: Counter[str] = Counter()
        self.by_source: dict[str, Counter[str]] = {}
        self.documents = 0
        self.documents_with_pii = 0

    def scan(self, paths: Sequence[str | Path], out: OutDir | None, redact_copy: bool) -> None:
        """Search every document; write findings (and redacted copies) into ``out`` when given."""
        files = expand_paths(paths)
        with ExitStack() as stack:
            findings = _Pending(out, FINDINGS_FILE, stack) if out is not None else None
            for path in files:
                copy = None
                if redact_copy and out is not None:
                    copy = _Pending(out, f"{REDACTED_DIR}/{_copy_name(path)}", stack)
                for doc in iter_file(path):
                    spans = find_pii(doc.text, self.kinds, self.region)
                    self.documents += 1
                    self.documents_with_pii += bool(spans)
                    for span in spans:
                        self.counts[span.kind.value] += 1
                        self.by_source.setdefault(str(path), Counter())[span.kind.value] += 1
                        if findings is not None:
                            record = {"source": doc.source, "doc": doc.doc_id, "kind": span.kind.value,
                                      "start": span.start, "end": span.end}  # fmt: skip
                            findings.write(json.dumps(record) + "\n")
                    if copy is not None:
                        text = redact(doc.text, spans)
                        copy.write(
                            text if _is_text(path) else json.dumps({"id": doc.doc_id, "text": text}) + "\n"
                        )
                if copy is not None:
                    copy.commit()
            if findings is not None:
                findings.commit()

    def summary(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "documents_with_pii": self.documents_with_pii,
            "findings": sum(self.counts.values()),
            "by_kind": dict(self.counts.most_common()),
            "by_source": {source: dict(c.most_common()) for source, c in self.by_source.items()},
            "region": self.region,
            "detectors": "ctxops.detect.pii: email, phone (phonenumbers), credit card (Luhn + issuer), IBAN, US SSN, IP",
        }


def _plain_name(path: Path) -> str:
    """The file name without a compression suffix (copies are written uncompressed)."""
    for suffix in (".gz", ".zst", ".zstd"):
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _is_text(path: Path) -> bool:
    return not _plain_name(path).lower().endswith((".jsonl", ".ndjson", ".parquet"))


def _copy_name(path: Path) -> str:
    """``notes.txt.gz`` -> ``notes.txt``; ``docs.parquet`` -> ``docs.jsonl``."""
    name = _plain_name(path)
    return name if _is_text(path) else name.rsplit(".", 1)[0] + ".jsonl"


class _Pending:
    """A file written under a temporary name and renamed into place by :meth:`commit` (never half a file)."""

    def __init__(self, out: OutDir, name: str, stack: ExitStack) -> None:
        self.target = out.path / name
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.with_name(self.target.name + ".tmp")
        self.handle: IO[str] = stack.enter_context(self.tmp.open("w", encoding="utf-8"))

    def write(self, text: str) -> None:
        self.handle.write(text)

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.target)

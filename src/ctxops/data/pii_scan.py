"""Personal data in corpora: counts by kind and where each finding is, and a redacted copy on request.

Every document is searched with the guard's detectors (:func:`ctxops.detect.pii.find_pii`). Findings record the
file, the document and the character span, never the value itself, so the report can be shared. With ``redact``,
each input file gets a copy under ``OUT/redacted/``: text files as text (their blocks joined back in order), JSONL
and Parquet files as JSONL of ``{"id", "text"}``, every finding replaced by ``<KIND>``. Outputs are appended to a
journal (:mod:`ctxops.data.journal`) and renamed into place when the scan is complete, so a run killed or stopped
midway continues where its last commit left it. This module knows documents and findings, not the detectors' rules.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxops.data.corpus import expand_paths
from ctxops.data.journal import Journal, Stop, pending
from ctxops.data.outdir import OutDir, file_signature, fingerprint
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
        self.done: dict[str, int] = {}  # file -> documents finished

    def scan(
        self,
        paths: Sequence[str | Path],
        out: OutDir | None,
        redact_copy: bool,
        stop: Stop | None = None,
        checkpoint_s: float = 30.0,
    ) -> tuple[bool, bool]:
        """Search every document; with ``out``, journal findings (and redacted copies) there and write the report.

        Returns (resumed, finished). With ``out``, a rerun with the same paths and settings continues after the
        last commit; when ``stop`` is raised the journal is committed at the document boundary and ``finished``
        is False.
        """
        files = expand_paths(paths)
        journal = None
        resumed = False
        if out is not None:
            kinds = sorted(k.value for k in self.kinds) if self.kinds else None
            key = fingerprint("pii", self.region, kinds, redact_copy, [file_signature(p) for p in files])
            journal = Journal(out, key, checkpoint_s)
            saved = journal.resume()
            if saved is not None:
                self.restore(saved)
                resumed = True
        finished = journal is not None and journal.finished  # killed after its end was committed
        for source, count, doc in [] if finished else pending(files, self.done):
            if journal is not None and self.done and source not in self.done:  # the previous file is finished
                journal.commit(self.state())
            spans = find_pii(doc.text, self.kinds, self.region)
            self.documents += 1
            self.documents_with_pii += bool(spans)
            for span in spans:
                self.counts[span.kind.value] += 1
                self.by_source.setdefault(source, Counter())[span.kind.value] += 1
            if journal is not None:
                for span in spans:
                    record = {"source": doc.source, "doc": doc.doc_id, "kind": span.kind.value,
                              "start": span.start, "end": span.end}  # fmt: skip
                    journal.append(FINDINGS_FILE, (json.dumps(record) + "\n").encode())
                if redact_copy:
                    text = redact(doc.text, spans)
                    path = Path(source)
                    line = text if _is_text(path) else json.dumps({"id": doc.doc_id, "text": text}) + "\n"
                    journal.append(f"{REDACTED_DIR}/{_copy_name(path)}", line.encode())
            self.done[source] = count
            if journal is not None and (stop or journal.due()):
                journal.commit(self.state())
                if stop:
                    return resumed, False
        if journal is not None and out is not None:
            if not finished:
                journal.append(FINDINGS_FILE, b"")  # the findings file exists even when nothing was found
                journal.finish(self.state())
            out.write_json("report.json", self.summary())
            journal.close()
        return resumed, True

    def state(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "documents": self.documents,
            "documents_with_pii": self.documents_with_pii,
            "by_source": self.by_source,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.done = dict(state["done"])
        self.documents, self.documents_with_pii = state["documents"], state["documents_with_pii"]
        self.by_source = {source: Counter(c) for source, c in state["by_source"].items()}
        self.counts = sum(self.by_source.values(), Counter())

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

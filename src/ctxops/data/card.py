"""Dataset cards: Hugging Face YAML front matter plus provenance, file hashes, token lengths and check summaries.

:func:`check_license` validates an SPDX expression with ``license-expression`` (``LicenseRef-`` ids are accepted as
SPDX allows) and warns when a license restricts the stated use: non-commercial (``-NC``) against commercial use,
no-derivatives (``-ND``) against training (a model is a derivative work under most readings), share-alike (``-SA``,
GPL family) that passes its terms on. :func:`build_card` hashes every file (sha256), counts documents, measures
token lengths under a tokenizer against an effective context length, and folds in the reports of ``ctxops data
contamination``, ``dedup`` and ``pii`` when given. :func:`verify_card` rehashes every listed file. This module
knows files, licenses and numbers, not models or HTTP.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from license_expression import ExpressionError, get_spdx_licensing

from ctxops.data.corpus import expand_paths, iter_file

_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))  # fmt: skip
_HF_LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
                "cc0-1.0", "odc-by", "odbl", "pddl", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "bsd-3-clause", "cdla-permissive-2.0",
                "cdla-sharing-1.0", "openrail", "unlicense"}  # fmt: skip
_READ_CHUNK = 1 << 20


class CardError(ValueError):
    """A card cannot be built or read as asked."""


@dataclass(frozen=True)
class License:
    """A validated SPDX expression, its Hugging Face id, and the warnings for the stated use."""

    spdx: str
    hf_id: str  # a Hugging Face license id, or "other"
    warnings: tuple[str, ...]


def check_license(expression: str, commercial: bool = True, training: bool = True) -> License:
    """Validate ``expression`` as SPDX; raise CardError naming the unknown ids; warn on conflicting terms."""
    licensing = get_spdx_licensing()
    try:
        info = licensing.validate(expression)
    except (ExpressionError, AttributeError) as exc:  # license-expression raises while reporting some errors
        raise CardError(f"license {expression!r} is not a valid SPDX expression ({exc})") from exc
    unknown = [s for s in info.invalid_symbols if not str(s).startswith("LicenseRef-")]
    if unknown or (info.errors and not info.invalid_symbols):
        raise CardError(
            f"license {expression!r} is not a valid SPDX expression ({'; '.join(info.errors)}); use SPDX ids such "
            "as Apache-2.0, MIT, CC-BY-4.0, CC-BY-NC-4.0, or LicenseRef-<name> for a custom license"
        )
    spdx = info.normalized_expression or expression
    keys = [str(k) for k in licensing.license_keys(licensing.parse(expression, validate=False))]
    warnings = []
    for key in keys:
        upper = key.upper()
        if commercial and "-NC" in upper:
            warnings.append(f"{key} forbids commercial use, and the stated use is commercial")
        if training and "-ND" in upper:
            warnings.append(f"{key} forbids derivatives; training a model on it may create one")
        if "-SA" in upper or "GPL" in upper:
            warnings.append(f"{key} is share-alike: derived data must be released under the same terms")
        if key.startswith("LicenseRef-"):
            warnings.append(f"{key} is a custom license: read its terms, no automatic check applies")
    hf_id = spdx.lower() if spdx.lower() in _HF_LICENSES else "other"
    return License(spdx, hf_id, tuple(warnings))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(files: Sequence[Path], base: Path) -> list[dict[str, Any]]:
    """Path (relative to ``base``, the card's directory, when inside it), sha256 and size of every file."""
    entries = []
    for path in files:
        try:
            shown = str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            shown = str(path.resolve())
        entries.append({"path": shown, "sha256": sha256_file(path), "bytes": path.stat().st_size})
    return entries


def token_lengths(
    files: Sequence[Path], count_tokens: Callable[[str], int], max_documents: int
) -> np.ndarray:
    """Tokens per document, over the first ``max_documents`` documents."""
    lengths: list[int] = []
    for path in files:
        for doc in iter_file(path):
            if len(lengths) >= max_documents:
                return np.asarray(lengths)
            lengths.append(count_tokens(doc.text))
    return np.asarray(lengths)


def length_summary(lengths: np.ndarray, effective_length: int) -> dict[str, Any]:
    """Percentiles of the token lengths and the share beyond ``effective_length``."""
    if not len(lengths):
        raise CardError("the files hold no documents with text; a card needs at least one")
    p50, p90, p99 = (int(np.percentile(lengths, q)) for q in (50, 90, 99))
    return {"documents_measured": len(lengths), "p50": p50, "p90": p90, "p99": p99, "max": int(lengths.max()),
            "effective_length": effective_length,
            "share_beyond_effective_length": round(float((lengths > effective_length).mean()), 4)}  # fmt: skip


def size_category(documents: int) -> str:
    """Hugging Face's ``size_categories`` bucket for a document count."""
    return next((name for limit, name in _SIZE_CATEGORIES if documents < limit), "n>1B")


def read_summary(directory: str | None, name: str = "report.json") -> dict[str, Any] | None:
    """The report.json of a ``ctxops data`` output directory (None when not given)."""
    if directory is None:
        return None
    path = Path(directory) / name
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CardError(
            f"{path}: cannot be read ({exc}); pass the --out directory of a `ctxops data` command"
        ) from exc


def front_matter(card_text: str) -> dict[str, Any]:
    """The YAML front matter of a card; CardError when it has none."""
    if not card_text.startswith("---\n") or "\n---\n" not in card_text[4:]:
        raise CardError("the card has no YAML front matter (a block between '---' lines at the top)")
    try:
        data = yaml.safe_load(card_text[4 : card_text.index("\n---\n", 4)])
    except yaml.YAMLError as exc:
        raise CardError(f"the card's front matter is not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise CardError("the card's front matter is not a YAML mapping")
    return data


def verify_card(card: Path) -> list[str]:
    """Rehash every file the card lists; returns one problem per missing or changed file (empty: all match)."""
    try:
        meta = front_matter(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"{card}: cannot be read ({exc})") from exc
    files = meta.get("ctxops", {}).get("files") if isinstance(meta.get("ctxops"), dict) else None
    if not files:
        raise CardError(
            f"{card}: lists no files (ctxops.files in the front matter); was it written by `ctxops data card`?"
        )
    problems = []
    for entry in files:
        path = Path(entry["path"])
        path = path if path.is_absolute() else card.parent / path
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: sha256 differs from the card (the file changed)")
    return problems


def list_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files of ``paths`` (directories expanded); CardError when there are none."""
    files = expand_paths(paths)
    if not files:
        raise CardError("no files given; pass the dataset's files or directories")
    return files


def today() -> str:
    """Today's date, ISO 8601 (the default retrieval date)."""
    return date.today().isoformat()

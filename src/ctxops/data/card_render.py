"""The text of a dataset card: Hugging Face YAML front matter, then the sections a reader looks for.

Front matter holds the Hugging Face fields (``license``, ``license_name`` for an SPDX expression Hugging Face has no
id for, ``pretty_name``, ``size_categories``) and a ``ctxops`` block: the SPDX expression, sources with retrieval
dates, every file with its sha256 and size (what ``ctxops data verify`` rechecks), the token-length summary and
the checks' summaries. The body follows the Hugging Face card template's headings (sources, structure, personal and
sensitive information, bias/risks/limitations) with the numbers filled in. This module knows text, not files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from ctxops.data.card import License, size_category


@dataclass(frozen=True)
class CardFacts:
    """Everything measured or stated about the dataset."""

    name: str
    license: License
    sources: list[dict[str, str]]  # {"url", "retrieved"}
    files: list[dict[str, Any]]  # {"path", "sha256", "bytes"}
    documents: int
    lengths: dict[str, Any]
    tokenizer: str
    contamination: dict[str, Any] | None = None
    dedup: dict[str, Any] | None = None
    pii: dict[str, Any] | None = None


def render_card(facts: CardFacts) -> str:
    """The whole card as Markdown with YAML front matter."""
    meta: dict[str, Any] = {"pretty_name": facts.name, "license": facts.license.hf_id}
    if facts.license.hf_id == "other":
        meta["license_name"] = facts.license.spdx
    meta["size_categories"] = [size_category(facts.documents)]
    meta["ctxops"] = {
        "license_spdx": facts.license.spdx,
        "sources": facts.sources,
        "files": facts.files,
        "documents": facts.documents,
        "token_lengths": {**facts.lengths, "tokenizer": facts.tokenizer},
        **{k: v for k, v in (("contamination", _brief(facts.contamination)), ("dedup", facts.dedup), ("pii", facts.pii)) if v},
    }  # fmt: skip
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=120)
    return f"---\n{head}---\n\n" + "\n".join(_body(facts)) + "\n"


def _brief(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    keep = ("items", "dirty", "dirty_by_kind", "dirty_with_answer", "tasks", "interval")
    return {k: report[k] for k in keep if k in report}


def _body(facts: CardFacts) -> list[str]:
    total = sum(f["bytes"] for f in facts.files)
    lengths = facts.lengths
    lines = [
        f"# {facts.name}",
        "",
        "## License",
        "",
        f"SPDX: `{facts.license.spdx}`.",
        *(f"- Warning: {w}" for w in facts.license.warnings),
        "",
        "## Sources",
        "",
        *(f"- {s['url']} (retrieved {s['retrieved']})" for s in facts.sources),
        "",
        "## Structure",
        "",
        f"{facts.documents:,} documents in {len(facts.files)} files, {total:,} bytes. sha256 of every file is in the "
        "front matter; `ctxops data verify` rechecks them.",
        "",
        f"Token lengths under {facts.tokenizer} ({lengths['documents_measured']:,} documents measured): p50 "
        f"{lengths['p50']:,}, p90 {lengths['p90']:,}, p99 {lengths['p99']:,}, max {lengths['max']:,}. "
        f"{lengths['share_beyond_effective_length']:.1%} of documents are longer than the effective context length "
        f"of {lengths['effective_length']:,} tokens: a model reading them whole misses part of them.",
        "",
        "## Checks",
        "",
    ]
    lines += _checks(facts)
    lines += [
        "",
        "## Bias, risks and limitations",
        "",
        "The numbers above are measured by ctxops on these files; they say nothing about the content's accuracy "
        "or fairness, which need a reader.",
    ]
    return lines


def _checks(facts: CardFacts) -> list[str]:
    lines = []
    if facts.contamination:
        c = facts.contamination
        lines.append(
            f"- Contamination: {c['dirty']} of {c['items']} eval items found in this data ({c.get('dirty_by_kind', {})})."
        )
    if facts.dedup:
        d = facts.dedup
        lines.append(f"- Duplicates: {d['exact_duplicates']:,} exact and {d['near_duplicates']:,} near duplicates "
                     f"of {d['documents']:,} documents; {d['kept']:,} kept.")  # fmt: skip
    if facts.pii:
        p = facts.pii
        lines.append(f"- Personal data: {p['findings']:,} findings in {p['documents_with_pii']:,} of "
                     f"{p['documents']:,} documents; by kind {p['by_kind']}.")  # fmt: skip
    return lines or [
        "No contamination, dedup or PII report was given (`--contamination`, `--dedup`, `--pii`)."
    ]

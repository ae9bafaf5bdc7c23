"""The files of a contamination check: ``findings.jsonl``, ``report.json`` and a readable ``report.md``.

``findings.jsonl`` has one line per dirty item (id, task, kinds of match, how much matched, where). ``report.json``
gives, per task, the share of items dirty with its 95% Wilson interval, the boilerplate n-grams that were set
apart and how often the corpus held them, and the settings. Each file is written whole and atomically, after the
scan has finished, so a directory either holds a finished report or none. :func:`check` runs a whole check (items,
scan, files), as ``ctxops data contamination`` and ``ctxops eval --contamination-corpus`` do. This module knows
findings, not how corpora are read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ctxops.data.contamination import ContaminationConfig, ContaminationScan, run_scan
from ctxops.data.items import load_items
from ctxops.data.outdir import OutDir
from ctxops.evals.stats import wilson

FINDINGS_FILE = "findings.jsonl"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
_EXAMPLES = 5


def summarize(scan: ContaminationScan, findings: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The report's numbers: items and dirty items per task (with intervals), corpus size, boilerplate."""
    totals = Counter(item.task for item in scan.items)
    dirty = Counter(f["task"] for f in findings)
    answered = Counter(f["task"] for f in findings if f["ngram"]["with_answer"] > 0)
    by_kind = Counter(kind for f in findings for kind in f["kinds"])
    tasks = {}
    for task, n in totals.items():
        low, high = wilson(dirty[task] / n, n)
        tasks[task] = {"items": n, "dirty": dirty[task], "share": dirty[task] / n, "ci95": [low, high],
                       "with_answer": answered[task]}  # fmt: skip
    return {
        "items": len(scan.items),
        "dirty": len(findings),
        "dirty_by_kind": dict(by_kind),
        "dirty_with_answer": sum(answered.values()),
        "tasks": tasks,
        "interval": "95% Wilson score interval on the share of dirty items",
        "corpus": {
            **scan.counts,
            "files": scan.done,
            "seconds": round(seconds, 2),
            "index_seconds": round(scan.index_seconds, 2),
        },  # fmt: skip
        "boilerplate": {
            "ngrams": int(len(scan.index.boilerplate)),
            "corpus_hits": scan.counts["boilerplate_hits"],
            "rule": f"in >= {scan.config.boilerplate_share:.0%} of a task's items (or of all items)",
        },
        "settings": asdict(scan.config),
    }


def write_report(out: OutDir, scan: ContaminationScan, seconds: float) -> dict[str, Any]:
    """Write findings.jsonl, report.json and report.md; returns the summary."""
    findings = scan.findings()
    summary = summarize(scan, findings, seconds)
    out.write_jsonl(FINDINGS_FILE, findings)
    out.write_json(REPORT_JSON, {**summary, "examples": findings[:_EXAMPLES]})
    out.write_text(REPORT_MD, render_markdown(summary, findings))
    return summary


def check(
    eval_source: str,
    corpus: Sequence[str | Path],
    out: OutDir,
    config: ContaminationConfig,
    model: str = "builtin",
    on_document: Callable[[int], None] | None = None,
    workers: int = 1,
) -> tuple[dict[str, Any], bool]:
    """Check the items of ``eval_source`` (see :func:`~ctxops.data.items.load_items`) against ``corpus``.

    Writes the files into ``out`` (resuming a stopped check there) and returns (the summary, resumed). ``workers``
    processes match documents (the result does not depend on it).
    """
    start = time.monotonic()
    scan = ContaminationScan(load_items(eval_source, model), config)
    resumed = run_scan(scan, corpus, out, on_document, workers)
    return write_report(out, scan, time.monotonic() - start), resumed


def render_markdown(summary: dict[str, Any], findings: list[dict[str, Any]]) -> str:
    """A readable report: settings, the per-task table, boilerplate, examples."""
    settings = summary["settings"]
    corpus = summary["corpus"]
    lines = [
        "# Contamination report",
        "",
        f"{summary['dirty']} of {summary['items']} eval items are dirty ({summary['dirty_with_answer']} with a gold "
        f"answer inside a matched n-gram): {settings['ngram']}-gram overlap "
        f"(at least {settings['min_matches']} distinct non-boilerplate n-gram) or a near-duplicate window "
        f"(aligned similarity >= {settings['near_dup']} over windows of {settings['window']} words; MinHash LSH "
        "on word bigrams proposes the pairs).",
        f"Corpus: {corpus['documents']:,} documents, {corpus['words']:,} words, scanned in {corpus['seconds']} s.",
        "",
        "| task | items | dirty | share | 95% interval | matched n-grams hold a gold answer |",
        "|---|---|---|---|---|---|",
    ]
    for task, row in summary["tasks"].items():
        low, high = row["ci95"]
        lines.append(
            f"| {task} | {row['items']} | {row['dirty']} | {row['share']:.1%} | {low:.1%}-{high:.1%} "
            f"| {row['with_answer']} |"
        )
    boiler = summary["boilerplate"]
    lines += [
        "",
        f"Boilerplate set apart: {boiler['ngrams']:,} n-grams {boiler['rule']}; the corpus held them "
        f"{boiler['corpus_hits']:,} times. They never make an item dirty.",
        "",
        "## Examples",
        "",
    ]
    for finding in findings[:_EXAMPLES]:
        ngram = finding["ngram"]
        where = "; ".join(
            f"{p['kind']} in {p['source']} doc {p['doc']} at word {p['word']}" for p in finding["where"]
        )
        lines.append(
            f"- `{finding['id']}` ({', '.join(finding['kinds'])}): {ngram['matched']}/{ngram['total']} n-grams "
            f"({ngram['with_answer']} holding an answer), "
            f"near-dup similarity {finding['near_dup']['similarity']}; {where}"
        )
    if not findings:
        lines.append("No item matched.")
    return "\n".join(lines) + "\n"

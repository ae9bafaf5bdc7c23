"""Question answering over documents: ``qa`` (the user's JSONL), ``qa_1`` (SQuAD) and ``qa_2`` (HotpotQA), RULER's shape.

``qa`` reads a JSONL file of ``{"documents": [...], "question": "...", "answers": [...]}``. ``qa_1`` and ``qa_2`` read
the files RULER downloads, given with ``--qa-data``: SQuAD 2.0's dev set (``{"data": [{"paragraphs": [{"context",
"qas": [{"question", "answers": [{"text"}], "is_impossible"}]}]}]}``; answerable questions only, the gold document
is the question's paragraph and the other paragraphs of its article are the first distractors, as in RULER) and
HotpotQA's distractor dev set (``[{"question", "answer", "context": [[title, [sentences]]]}]``; a document is the
title, a newline and the sentences joined, and the question's ten paragraphs are its gold documents, as in RULER).

Each item picks a record by seed, puts its gold documents at the requested depth among distractor documents (every
other document once, shuffled), labels them "Document i:", and asks the question. Scored with any-match over the
answers (``string_match_part``). The length is hit to within one document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ctxops.evals.sample import Metric, Sample
from ctxops.evals.tasks.base import BuildContext, QARecord, Rendered, TaskError, register_task

TEMPLATE = (
    "Answer the question using the documents below. Give only the answer, with no other words.\n\n"
    "The documents:\n\n{context}\n\n"
    "Answer the question using the documents above. Give only the answer, with no other words.\n\n"
    "Question: {question}"
)
ANSWER_PREFIX = "Answer:"
DATASET_TASKS = {"squad": "qa_1", "hotpotqa": "qa_2"}


def read_qa_file(path: str | Path) -> list[QARecord]:
    """Read a QA JSONL file; a malformed line raises ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"QA file {str(path)!r} does not exist; pass a JSONL of {{documents, question, answers}}"
        )
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            records.append(
                QARecord(
                    tuple(data["documents"]), str(data["question"]), tuple(str(a) for a in data["answers"])
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f'{path}:{number}: expected {{"documents": [...], "question": "...", "answers": [...]}} ({exc})'
            ) from exc
    if len(records) < 2:
        raise ValueError(f"{path}: needs at least 2 records (the others' documents are the distractors)")
    return records


def _squad(data: dict[str, Any]) -> list[QARecord]:
    records = []
    for article in data["data"]:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        for paragraph in article["paragraphs"]:
            related = tuple(p for p in paragraphs if p != paragraph["context"])
            for qa in paragraph["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                records.append(QARecord((paragraph["context"],), qa["question"], answers, related))
    return records


def _hotpotqa(data: list[dict[str, Any]]) -> list[QARecord]:
    return [
        QARecord(tuple(f"{title}\n{''.join(sentences)}" for title, sentences in d["context"]), d["question"],
                 (str(d["answer"]),))
        for d in data
    ]  # fmt: skip


def read_qa_dataset(path: str | Path) -> tuple[str, list[QARecord]]:
    """(task, records) of a SQuAD (``qa_1``) or HotpotQA (``qa_2``) JSON file, told apart by its shape."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--qa-data {path}: no such file (SQuAD 2.0 dev or HotpotQA distractor dev JSON)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "data" in data:
            task, records = "qa_1", _squad(data)
        elif isinstance(data, list) and data and isinstance(data[0], dict) and "context" in data[0]:
            task, records = "qa_2", _hotpotqa(data)
        else:
            raise ValueError("neither SQuAD's {'data': [...]} nor HotpotQA's [{'question', 'context', ...}]")
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"--qa-data {path}: not a SQuAD 2.0 or HotpotQA file ({type(exc).__name__}: {exc}); pass the JSON "
            "files RULER downloads (SQuAD dev-v2.0.json, hotpot_dev_distractor_v1.json)"
        ) from exc
    if len(records) < 2:
        raise ValueError(f"--qa-data {path}: needs at least 2 answerable questions")
    return task, records


def build_qa(ctx: BuildContext) -> Sample:
    """Build one QA item from ``ctx.qa_records``."""
    if not ctx.qa_records:
        hint = "--qa-file FILE (a JSONL of {documents, question, answers})"
        if ctx.spec.task != "qa":
            hint = f"--qa-data FILE ({'SQuAD 2.0' if ctx.spec.task == 'qa_1' else 'HotpotQA'} dev JSON)"
        raise TaskError(f"task {ctx.spec.task!r} needs documents: pass {hint}")
    rng = ctx.rng
    index = rng.randrange(len(ctx.qa_records))
    record = ctx.qa_records[index]
    gold_docs = set(record.documents)
    related = [d for d in dict.fromkeys(record.related) if d not in gold_docs]
    rng.shuffle(related)
    seen = gold_docs | set(related)
    rest = []
    for other in ctx.qa_records:
        for document in other.documents:
            if document not in seen:  # every other document once, however many questions share it
                seen.add(document)
                rest.append(document)
    rng.shuffle(rest)
    pool = related + rest

    def render(n: int) -> Rendered:
        distractors = [pool[i % len(pool)] for i in range(n)] if pool else []
        position = round(ctx.depth * len(distractors))
        docs = distractors[:position] + list(record.documents) + distractors[position:]
        context = "\n\n".join(f"Document {i}:\n{d}" for i, d in enumerate(docs, 1))
        prompt = TEMPLATE.format(context=context, question=record.question)
        return prompt, ANSWER_PREFIX, {"record": index, "gold_position": position, "documents": len(docs)}

    return ctx.fit(render, record.answers)


for _name, _description in (
    ("qa", "QA over the user's documents"),
    ("qa_1", "SQuAD 2.0 QA (--qa-data)"),
    ("qa_2", "HotpotQA multi-hop QA (--qa-data)"),
):
    register_task(_name, family="qa", max_tokens=32, metric=Metric.ANY, description=_description)(build_qa)

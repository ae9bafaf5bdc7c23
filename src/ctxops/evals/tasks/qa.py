"""Question answering over the user's own documents (``qa``), RULER's qa shape.

The user gives a JSONL file of ``{"documents": [...], "question": "...", "answers": [...]}``. Each item picks a
record by seed, puts its gold documents at the requested depth among distractor documents (the other records'
documents, shuffled), labels them "Document i:", and asks the question. Scored with any-match over the answers
(``string_match_part``). The length is hit to within one document.
"""

from __future__ import annotations

import json
from pathlib import Path

from ctxops.evals.sample import Metric, Sample
from ctxops.evals.tasks.base import BuildContext, QARecord, Rendered, TaskError, register_task

TEMPLATE = (
    "Answer the question using the documents below. Give only the answer, with no other words.\n\n"
    "The documents:\n\n{context}\n\n"
    "Answer the question using the documents above. Give only the answer, with no other words.\n\n"
    "Question: {question}"
)
ANSWER_PREFIX = "Answer:"


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


@register_task(
    "qa", family="qa", max_tokens=32, metric=Metric.ANY, description="QA over the user's documents"
)
def build_qa(ctx: BuildContext) -> Sample:
    """Build one QA item from ``ctx.qa_records``."""
    if not ctx.qa_records:
        raise TaskError(
            "task 'qa' needs documents: pass --qa-file FILE (a JSONL of {documents, question, answers})"
        )
    rng = ctx.rng
    index = rng.randrange(len(ctx.qa_records))
    record = ctx.qa_records[index]
    gold_docs = set(record.documents)
    pool = [d for i, r in enumerate(ctx.qa_records) if i != index for d in r.documents if d not in gold_docs]
    rng.shuffle(pool)

    def render(n: int) -> Rendered:
        distractors = [pool[i % len(pool)] for i in range(n)] if pool else []
        position = round(ctx.depth * len(distractors))
        docs = distractors[:position] + list(record.documents) + distractors[position:]
        context = "\n\n".join(f"Document {i}:\n{d}" for i, d in enumerate(docs, 1))
        prompt = TEMPLATE.format(context=context, question=record.question)
        return prompt, ANSWER_PREFIX, {"record": index, "gold_position": position, "documents": len(docs)}

    return ctx.fit(render, record.answers)

"""The ``ensemble`` policy: one request sent to every arm at once, answered with the majority or first valid answer.

Each arm gets the request unstreamed; the answers are compared after normalization (case, surrounding space and
punctuation, runs of whitespace), and ``majority`` returns the most common one (a tie goes to the arm listed
first), ``first_valid`` the first arm in the routes' order that answered with non-empty text. The chosen answer
goes back to the client as a stream of one content chunk and the chosen arm's usage, so streamed and unstreamed
clients both get it; the record names the chosen arm, and the reason ``ensemble:<mode>:<votes>/<arms>``. Arms that
fail are left out of the vote; when all fail the client gets a 502 listing why. The arms are asked through the
gateway's ``ask`` (its breakers and in-flight counts see every call), and arms whose breaker is open sit the vote out
unless every breaker is open. An ensemble costs N requests and waits for the slowest arm: it buys accuracy, not
speed. This module knows answers and votes, not routing or HTTP.
"""

from __future__ import annotations

import asyncio
import re
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from ctxops.serve.errors import upstream_error
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint, chunk, usage_chunk
from ctxops.serve.routes import Arm, EnsembleMode

_SPACE = re.compile(r"\s+")
Ask = Callable[[Arm, dict[str, Any]], Awaitable[dict[str, Any]]]  # (arm, unstreamed body) -> its JSON answer


def normalize(text: str) -> str:
    """The answer as votes compare it: lower case, inner whitespace collapsed, outer space and punctuation gone."""
    return _SPACE.sub(" ", text.lower()).strip().strip(string.punctuation + " ")


def _text(endpoint: Endpoint, body: dict[str, Any]) -> str:
    choice = (body.get("choices") or [{}])[0]
    if endpoint is Endpoint.CHAT:
        return str((choice.get("message") or {}).get("content") or "")
    return str(choice.get("text") or "")


def pick(answers: list[str | None], mode: EnsembleMode) -> tuple[int, int] | None:
    """(index of the chosen answer, its votes) among the arms' answers (None: an arm failed), or None."""
    valid = [(i, a) for i, a in enumerate(answers) if a is not None and normalize(a)]
    if not valid:
        return None
    if mode is EnsembleMode.FIRST_VALID:
        index = valid[0][0]
        return index, sum(normalize(a) == normalize(valid[0][1]) for _, a in valid)
    votes = Counter(normalize(a) for _, a in valid)
    best = max(votes.values())
    index = next(i for i, a in valid if votes[normalize(a)] == best)  # the earliest arm among the most voted
    return index, best


async def ensemble_answer(
    ask: Ask, endpoint: Endpoint, body: dict[str, Any], arms: tuple[Arm, ...], mode: EnsembleMode,
    record: RequestRecord, model_name: str,
) -> list[Chunk]:  # fmt: skip
    """Ask every arm (``arms``: those whose breaker lets them vote), vote, and return the chosen answer as chunks."""
    plain = {**body, "stream": False}
    plain.pop("stream_options", None)
    results = await asyncio.gather(*(ask(a, plain) for a in arms), return_exceptions=True)
    answers = [None if isinstance(r, BaseException) else _text(endpoint, r) for r in results]
    chosen = pick(answers, mode)
    if chosen is None:
        why = "; ".join(f"{a.name}: {r if isinstance(r, BaseException) else 'empty answer'}"
                        for a, r in zip(arms, results, strict=True))  # fmt: skip
        raise upstream_error(f"no arm of the ensemble gave an answer: {why}")
    index, votes = chosen
    winner: dict[str, Any] = results[index]  # type: ignore[assignment]
    arm = arms[index]
    record.upstream, record.arm, record.version = arm.upstream.name, arm.name, arm.version
    record.route_reason = f"ensemble:{mode.value}:{votes}/{len(arms)}"
    finish = (winner.get("choices") or [{}])[0].get("finish_reason") or "stop"
    used = winner.get("usage") or {}
    record.prompt_tokens, record.completion_tokens = used.get("prompt_tokens"), used.get("completion_tokens")
    record.finish_reason, record.usage_source = finish, "upstream"
    record.ttft_s = record.elapsed()
    created = int(winner.get("created") or time.time())
    return [
        chunk(
            endpoint,
            record.request_id,
            created,
            model_name,
            answers[index] or "",
            first=True,
            finish_reason=finish,
        ),
        usage_chunk(endpoint, record.request_id, created, model_name, used),
    ]

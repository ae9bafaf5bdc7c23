"""The guard (``ctxops serve --guard guard.toml``): injection and personal-data rules on what goes in and out.

Input: every message of a chat request (every text part) and every prompt of a completion request is read in
full, however long (:mod:`ctxops.detect` scans in overlapping windows, never a 512-token cut). Each finding takes
its rule's action: ``log`` counts it, ``redact`` replaces it with ``<RULE>`` in the request before the backend (or
the upstream) sees it, ``block`` refuses the request with an OpenAI-shaped 400 whose message names the rule and the
location (field and character offsets), never the matched text. A redacted request is what the backend receives,
so it is also what ``--log-prompts`` stores.

Output: :meth:`Guard.filter_output` wraps the backend's chunk stream (see :mod:`.guard_stream`).

Every finding is counted in ``ctxops:guard_findings_total{side, rule, action}`` on the server's registry, noted on
the request's row in the request log (``guard_action``: the strongest action; ``guard_rules``: ``side:rule`` of
each rule that matched) and logged (rule, action, location; no data). The guard knows requests and text, not engines or sockets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from ctxops.detect.injection import find_injections
from ctxops.detect.pii import find_pii
from ctxops.serve.errors import APIError
from ctxops.serve.guard_config import CANARY, PII_RULES, Action, GuardConfig
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint
from ctxops.serve.schemas import ChatCompletionRequest, CompletionRequest

logger = logging.getLogger("ctxops.serve.guard")
GUARD_CODE = "content_filter"  # error.code of a blocked request, finish_reason of a cut answer


@dataclass(frozen=True, slots=True)
class Match:
    """One finding of the guard: rule, action and span in one piece of text."""

    rule: str
    action: Action
    start: int
    end: int
    detail: str = ""


def find_matches(text: str, config: GuardConfig, side: str) -> list[Match]:
    """Every finding of ``side``'s rules in ``text`` with its action (injection and personal-data rules)."""
    actions = dict(config.input_rules if side == "input" else config.output_rules)
    injection = tuple(r for r in actions if r not in PII_RULES and r != CANARY)
    pii = [r for r in actions if r in PII_RULES]
    matches = []
    if injection:
        for f in find_injections(text, injection):
            matches.append(Match(f.rule, actions[f.rule], f.start, f.end, f.detail))
    if pii:
        for p in find_pii(text, pii, config.pii_region):
            matches.append(Match(p.kind.value, actions[p.kind.value], p.start, p.end))
    return sorted(matches, key=lambda m: (m.start, m.end))


def redact(text: str, matches: list[Match]) -> str:
    """``text`` with every ``redact`` match replaced by ``<RULE>``; overlapping matches merge into the first."""
    pieces, position = [], 0
    for m in sorted((m for m in matches if m.action is Action.REDACT), key=lambda m: m.start):
        if m.start < position:
            position = max(position, m.end)
            continue
        pieces += [text[position : m.start], f"<{m.rule.upper()}>"]
        position = m.end
    return "".join(pieces) + text[position:]


class GuardMetrics:
    """``ctxops:guard_findings_total`` on the server's registry."""

    def __init__(self, registry: CollectorRegistry, model_name: str) -> None:
        self.model_name = model_name
        self.findings = Counter(
            "ctxops:guard_findings",
            "Guard findings by side (input/output), rule and the action taken.",
            ["model_name", "side", "rule", "action"],
            registry=registry,
        )

    def count(self, side: str, match: Match, record: RequestRecord | None = None) -> None:
        """Count one finding, and note it on the request's log record (its row keeps action and rules)."""
        self.findings.labels(self.model_name, side, match.rule, match.action.value).inc()
        if record is not None:
            note_finding(record, side, match)


_STRENGTH = {Action.LOG: 0, Action.REDACT: 1, Action.BLOCK: 2}


def note_finding(record: RequestRecord, side: str, match: Match) -> None:
    """Keep the strongest action on ``record`` and add ``side:rule`` to its sorted set of rules."""
    rules = set(record.guard_rules.split(",")) if record.guard_rules else set()
    record.guard_rules = ",".join(sorted(rules | {f"{side}:{match.rule}"}))
    if record.guard_action is None or _STRENGTH[match.action] > _STRENGTH[Action(record.guard_action)]:
        record.guard_action = match.action.value


def _texts(endpoint: Endpoint, request: ChatCompletionRequest | CompletionRequest) -> Iterator[
    tuple[str, str, Callable[[str], None]]
]:  # fmt: skip
    """(location, text, setter) for every piece of text the request carries."""
    if endpoint is Endpoint.CHAT:
        for i, message in enumerate(request.messages):  # type: ignore[union-attr]
            if isinstance(message.content, str):
                yield f"messages[{i}].content", message.content, lambda t, m=message: setattr(m, "content", t)
            elif message.content:
                for j, part in enumerate(message.content):
                    if part.text:
                        yield (
                            f"messages[{i}].content[{j}].text",
                            part.text,
                            lambda t, p=part: setattr(p, "text", t),
                        )
        return
    prompt = request.prompt  # type: ignore[union-attr]
    if isinstance(prompt, str):
        yield "prompt", prompt, lambda t: setattr(request, "prompt", t)
    elif prompt and isinstance(prompt[0], str):

        def setter(index: int) -> Callable[[str], None]:
            return lambda t: prompt.__setitem__(index, t)

        for i, text in enumerate(prompt):
            yield f"prompt[{i}]", text, setter(i)  # type: ignore[arg-type]


def blocked(match: Match, location: str) -> APIError:
    """The 400 for a blocked request: rule, signature and where, never the matched text."""
    what = f"{match.rule} ({match.detail})" if match.detail else match.rule
    return APIError(
        400,
        f"The request was blocked by the guard: rule {what} matched in {location} at characters "
        f"{match.start}-{match.end}. Remove that content or ask the operator to change the guard's rules.",
        param=location,
        code=GUARD_CODE,
    )


class Guard:
    """One server's guard: the rules, the counters, and the two checks."""

    def __init__(self, config: GuardConfig, metrics: GuardMetrics) -> None:
        self.config = config
        self.metrics = metrics

    def check_request(
        self,
        endpoint: Endpoint,
        request: ChatCompletionRequest | CompletionRequest,
        record: RequestRecord | None = None,
    ) -> int:
        """Apply the input rules to ``request`` in place; raises the 400 of the first block. Returns findings.

        Findings are counted and, with ``record``, noted on the request's log row.
        """
        if not self.config.input_rules:
            return 0
        edits: list[tuple[Callable[[str], None], str]] = []
        count = 0
        for location, text, setter in list(_texts(endpoint, request)):
            matches = find_matches(text, self.config, "input")
            for match in matches:
                count += 1
                self.metrics.count("input", match, record)
                logger.warning(
                    "guard: input rule %s (%s) in %s at %d-%d: %s",
                    match.rule, match.detail or match.rule, location, match.start, match.end, match.action.value,
                )  # fmt: skip
            block = next((m for m in matches if m.action is Action.BLOCK), None)
            if block is not None:
                raise blocked(block, location)
            if any(m.action is Action.REDACT for m in matches):
                edits.append((setter, redact(text, matches)))
        for setter, text in edits:  # only once nothing blocks: a refused request is left as it came
            setter(text)
        return count

    def filter_output(
        self, endpoint: Endpoint, chunks: AsyncIterator[Chunk], record: RequestRecord
    ) -> AsyncIterator[Chunk]:
        """The backend's chunks with the output rules applied (see :mod:`.guard_stream`)."""
        from ctxops.serve.guard_stream import OutputFilter

        return OutputFilter(self, endpoint, record).run(chunks)

    @property
    def checks_output(self) -> bool:
        """True when any output rule is on."""
        return bool(self.config.output_rules)

"""The gateway backend: requests are forwarded to OpenAI-compatible servers (vLLM, SGLang, llama.cpp, ctxops).

Each request is sent upstream as a stream with usage (whatever the client asked), so the gateway sees every token
and the final counts: streamed clients get the chunks passed through as they arrive, others get them aggregated.
The upstream is picked by :func:`ctxops.serve.routing.rank` (weighted, sticky per ``user`` or API key), with
upstreams whose circuit breaker is open (:mod:`ctxops.serve.circuit_breaker`) or that are at their
``max_concurrency`` moved to the end of that ranking (still tried when nothing else is left).

Routes. With a routes file (:mod:`ctxops.serve.router`) the plan comes from its arms and policy instead, and each
request's record carries the arm, version and reason it went there; under the ``length`` and ``fallback``
policies a request also moves on after the failures :mod:`ctxops.serve.backends.fallback` lists, as long as no
byte was sent to the client.

Retries. A request moves to the next upstream only when this one certainly did not run it: the connection could
not be opened (refused, connect timeout, no pool slot), or the upstream answered 429 or 503 (it refused the
request unrun: a ctxops engine that dies answers the requests it was running with 500 ``engine_failed``, and only
later arrivals with 503 ``failed``). Everything else ends the request, so a request that crashes or wedges an engine
reaches one engine, not all of them: a 4xx is passed back as is; a 5xx becomes a 502 carrying the upstream's
message; a read timeout before the response headers becomes a 504 and is *not* retried, because the request was
sent and the upstream may be running it (LiteLLM retries timeouts and every 5xx; a gateway that replays a poison
request takes down every upstream it has, so this one is stricter); a connection dropped after sending, or a
stream that breaks, reports an error or ends without ``[DONE]`` after the upstream accepted it, is a 502 (an
``error`` event once chunks have been sent). Pooled connections are dropped after 2 s idle, before the 5 s
keep-alive of uvicorn-based upstreams (vLLM, llama.cpp's Python server, ctxops) ends, so a connection the upstream
is closing is never reused: that race would look like a dropped connection and would not be retried.

Bookkeeping (:mod:`ctxops.serve.backends.upstream_health`, shared with the ``ensemble`` fan-out). Each attempt is
counted when it ends, with its outcome (``ok``, ``retried``, ``rejected``, ``failed``, ``aborted``), and feeds the
upstream's breaker: connection errors, 5xx, timeouts and broken streams
are failures; an answer, even a 4xx, is a success; a 429 or a client that went away is neither. When the upstream
sends no usage (llama.cpp's server streams none), the gateway counts completion tokens itself, one per chunk with
text or one per logprob entry when chunks carry logprobs (llama.cpp and vLLM stream a chunk per token; the count
is a lower bound where an upstream holds a partial character back or batches tokens into a chunk), and sends that
count in a usage chunk marked ``"usage_source": "counted"`` with ``prompt_tokens: null`` (unknown); failed and
aborted streams log the tokens relayed so far (the parsing and counting live in
:mod:`ctxops.serve.backends.upstream_stream`). ``/tokenize`` and ``/detokenize`` are forwarded by
:mod:`ctxops.serve.backends.upstream_tokenizer`. It knows HTTP and chunks, not token ids or blocks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing
from typing import Any

from ctxops.serve.backends.base import Backend, GenerationRequest
from ctxops.serve.backends.ensemble import ensemble_answer
from ctxops.serve.backends.fallback import count_prompt, failure_kind, falls_back
from ctxops.serve.backends.http_client import (
    ConnectFailed,
    HTTPClient,
    HTTPFailure,
    Response,
    ResponseTimeout,
)
from ctxops.serve.backends.upstream_health import UpstreamHealth
from ctxops.serve.backends.upstream_stream import Tally, counted_usage, read_chunks
from ctxops.serve.backends.upstream_tokenizer import forward_tokenizer
from ctxops.serve.circuit_breaker import DEFAULT_COOLDOWN_S, DEFAULT_FAILURE_THRESHOLD
from ctxops.serve.config import UpstreamSpec
from ctxops.serve.errors import APIError, relayed_error, upstream_error
from ctxops.serve.metrics import BackendStats
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint
from ctxops.serve.router import Choice, Router
from ctxops.serve.routes import Arm, Policy
from ctxops.serve.routing import rank
from ctxops.serve.schemas import DetokenizeRequest, TokenizeRequest

logger = logging.getLogger("ctxops.serve")
_PATHS = {Endpoint.CHAT: "/chat/completions", Endpoint.COMPLETIONS: "/completions"}
_KEEPALIVE_S = 2.0  # idle pooled connections are closed before an upstream's keep-alive (5 s in uvicorn) ends


class _Refused(Exception):
    """This upstream did not run the request (unreachable, or 429/503): the next one may get it."""

    def __init__(self, message: str, unhealthy: bool) -> None:
        super().__init__(message)
        self.unhealthy = unhealthy  # counts against the breaker (unreachable, 503), or not (429)


def discover_model(upstream: UpstreamSpec, timeout_s: float = 10.0) -> str:
    """The first model id an upstream lists at ``GET {url}/models`` (blocking; for startup, before any loop runs)."""
    key = upstream.api_key
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def ask() -> tuple[int, bytes]:
        client = HTTPClient(timeout_s)
        try:
            return await client.fetch("GET", f"{upstream.url}/models", headers=headers)
        finally:
            await client.aclose()

    status, raw = asyncio.run(ask())
    if status != 200:
        raise upstream_error(
            f"GET {upstream.url}/models answered {status}: {relayed_error(status, raw).message}"
        )
    return json.loads(raw)["data"][0]["id"]


class UpstreamBackend(Backend):
    """Forwards to several upstreams by weight, sticky per user, failing over only when that is safe."""

    def __init__(
        self,
        upstreams: tuple[UpstreamSpec, ...],
        model_name: str,
        timeout_s: float = 600.0,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        cooldown_s: float = DEFAULT_COOLDOWN_S,
        router: Router | None = None,
    ) -> None:
        self.router = router  # routes file: arms, versions and policy; None = the upstreams by weight
        if router is not None:
            upstreams = tuple({a.upstream.url: a.upstream for a in router.current.arms}.values())
        if not upstreams:
            raise ValueError("gateway mode needs at least one upstream")
        self.upstreams = upstreams
        self.model_name = model_name
        self.capacity = sum(u.max_concurrency for u in upstreams)  # beyond it requests queue (then 429)
        self.health = UpstreamHealth(failure_threshold, cooldown_s)  # breakers and in-flight counts per URL
        self.in_flight = self.health.in_flight
        self.timeout_s = timeout_s
        self.client: HTTPClient | None = None
        self.upstream_models = {
            u.url: u.model for u in upstreams if u.model
        }  # url -> the upstream's model id
        self.num_running = 0
        self.created = int(time.time())

    async def start(self) -> None:
        """Open the connection pool (upstreams are not required to be up yet)."""
        self.client = HTTPClient(self.timeout_s, min(self.timeout_s, 5.0), keepalive_s=_KEEPALIVE_S)
        await self.discover(self.upstreams)

    async def discover(self, upstreams: Iterable[UpstreamSpec]) -> None:
        """Ask each upstream not asked yet for its model id (one that cannot say gets the client's model name)."""
        assert self.client is not None
        for upstream in upstreams:
            if upstream.model is not None:
                self.upstream_models[upstream.url] = upstream.model
            elif upstream.url not in self.upstream_models:
                try:
                    _, raw = await self.client.fetch(
                        "GET", f"{upstream.url}/models", headers=self._headers(upstream), timeout=5.0
                    )
                    self.upstream_models[upstream.url] = json.loads(raw)["data"][0]["id"]
                except (HTTPFailure, ValueError, KeyError, IndexError, TypeError) as exc:
                    logger.warning(
                        "%s: cannot list its models (%s); forwarding the client's model name",
                        upstream.name,
                        exc,
                    )

    async def stop(self) -> None:
        """Close the pool."""
        if self.client is not None:
            await self.client.aclose()

    @property
    def on_attempt(self) -> Callable[[str, str, bool], None]:
        """Set by the server (metrics): (upstream name, outcome, circuit open?) once per attempt, when it ends."""
        return self.health.on_attempt

    @on_attempt.setter
    def on_attempt(self, hook: Callable[[str, str, bool], None]) -> None:
        self.health.on_attempt = hook

    def stats(self) -> BackendStats:
        """Requests forwarded and not yet finished; a gateway has no queue or KV cache of its own."""
        return BackendStats(num_running=self.num_running, num_waiting=0)

    def model_card(self) -> dict[str, Any]:
        """The ``/v1/models`` entry."""
        return {
            "id": self.model_name,
            "object": "model",
            "created": self.created,
            "owned_by": "ctxops-gateway",
        }

    def _order(self, request: Any, record: RequestRecord) -> list[UpstreamSpec]:
        """The sticky ranking; upstreams with an open breaker go last, then those at their ``max_concurrency``."""
        return [c.arm.upstream for c in self.health.healthy_first(self._ranked(request, record, None))]

    def _ranked(self, request: Any, record: RequestRecord, prompt_tokens: int | None) -> list[Choice]:
        """The routes' plan, or (without routes) the upstreams by sticky weight, as arms named by host:port."""
        sticky = getattr(request, "user", None) or record.key_id
        if self.router is not None:
            return self.router.plan(sticky, prompt_tokens, getattr(request, "max_output_tokens", None))
        order = rank([u.url for u in self.upstreams], [u.weight for u in self.upstreams], sticky)
        return [Choice(Arm(f"u{i}", self.upstreams[i], weight=self.upstreams[i].weight), "") for i in order]

    def _headers(self, upstream: UpstreamSpec) -> dict[str, str]:
        key = upstream.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    # ---- generation ---------------------------------------------------------------------------------------------
    async def stream(
        self, endpoint: Endpoint, request: GenerationRequest, record: RequestRecord
    ) -> AsyncIterator[Chunk]:
        """Send to upstreams in ranked order until one takes the request; then pass its chunks through."""
        body = request.model_dump(exclude_unset=True)
        body.update(stream=True, stream_options={"include_usage": True})
        record.max_tokens = request.max_output_tokens
        if self.router is not None and self.router.current.policy is Policy.ENSEMBLE:
            current = self.router.current
            voters = tuple(a for a in current.arms if self.health.allows(a.upstream)) or current.arms
            for item in await ensemble_answer(
                lambda arm, plain: self._ask_whole(endpoint, arm, plain), endpoint, body, voters,
                current.ensemble, record, self.model_name,
            ):  # fmt: skip
                yield item
            return
        prompt_tokens = None
        if self.router is not None and self.router.needs_prompt_tokens():
            arm = min(self.router.current.arms, key=lambda a: (a.cost, a.name))
            model = self.upstream_models.get(arm.upstream.url) or request.model
            assert self.client is not None
            prompt_tokens = await count_prompt(
                self.client, request, arm.upstream, model, self._headers(arm.upstream)
            )
        planned = self._ranked(request, record, prompt_tokens)
        order = self.health.healthy_first(planned)
        policy = self.router.current.policy if self.router is not None else None
        failures: list[str] = []
        why = "circuit_open" if order[0] is not planned[0] else None  # the first choice's breaker is open
        for position, choice in enumerate(order):
            upstream, last = choice.arm.upstream, position == len(order) - 1
            body["model"] = self.upstream_models.get(upstream.url) or request.model
            probe = self.health.begin(upstream)
            try:
                response = await self._send(upstream, endpoint, body)
            except _Refused as exc:
                self.health.settle(
                    upstream, "failed" if last else "retried", False if exc.unhealthy else None, probe
                )
                failures.append(f"{upstream.name}: {exc}")
                why = "unreachable" if exc.unhealthy else "busy"
                continue
            except APIError as exc:
                self._mark(record, choice, why)
                rejected = exc.status < 500
                moving_on = not last and falls_back(exc, policy)
                outcome = "retried" if moving_on else "rejected" if rejected else "failed"
                self.health.settle(upstream, outcome, rejected, probe)
                if not moving_on:
                    raise
                failures.append(f"{upstream.name}: {exc.message}")
                why = failure_kind(exc)
                continue
            except BaseException:  # the client went away while the headers were awaited: no verdict
                self.health.settle(upstream, "aborted", None, probe)
                raise
            self._mark(record, choice, why)
            sent = False
            try:
                async with aclosing(self._relay(upstream, response, endpoint, record, probe)) as chunks:
                    async for item in chunks:
                        sent = True
                        yield item
            except APIError as exc:  # a stream that failed before its first byte may still go elsewhere
                if sent or last or not falls_back(exc, policy):
                    raise
                failures.append(f"{upstream.name}: {exc.message}")
                why = failure_kind(exc)
                continue
            return
        raise upstream_error("every upstream failed: " + "; ".join(failures))

    def _mark(self, record: RequestRecord, choice: Choice, why: str | None) -> None:
        """Note on the record which upstream (and arm, version) got the request and why."""
        record.upstream = choice.arm.upstream.name
        if self.router is not None:
            record.arm, record.version = choice.arm.name, choice.arm.version
            record.route_reason = f"fallback:{why}" if why else choice.reason

    async def _send(self, upstream: UpstreamSpec, endpoint: Endpoint, body: dict[str, Any]) -> Response:
        """POST the request and wait for the response headers; a 200 response whose body is still to be read.

        Raises :class:`_Refused` when the upstream certainly did not run the request, :class:`APIError` otherwise.
        """
        assert self.client is not None
        try:
            response = await self.client.request(
                "POST", upstream.url + _PATHS[endpoint], body, self._headers(upstream)
            )
        except ConnectFailed as exc:  # the request never left the gateway
            raise _Refused(str(exc), unhealthy=True) from exc
        except ResponseTimeout as exc:
            raise upstream_error(
                f"upstream {upstream.name} sent no answer within {self.timeout_s:g} s (not retried elsewhere: "
                "it may still be running the request)",
                status=504,
            ) from exc
        except HTTPFailure as exc:
            raise upstream_error(
                f"upstream {upstream.name} dropped the connection before answering ({type(exc).__name__}: {exc})"
            ) from exc
        status = response.status_code
        if status == 200:
            return response
        raw = await response.aread()
        await response.aclose()
        error = relayed_error(status, raw)
        if status in (429, 503):
            raise _Refused(f"answered {status}: {error.message}", unhealthy=status == 503)
        if 400 <= status < 500:
            raise error
        raise upstream_error(f"upstream {upstream.name} answered {status}: {error.message}")

    async def _relay(
        self,
        upstream: UpstreamSpec,
        response: Response,
        endpoint: Endpoint,
        record: RequestRecord,
        probe: bool,
    ) -> AsyncIterator[Chunk]:
        """The accepted response's chunks; the attempt's outcome is settled when the stream ends, however it ends."""
        tally = Tally()
        outcome, healthy = "aborted", None  # unless the stream ends or fails first: the client went away
        self.num_running += 1
        self.in_flight[upstream.url] += 1
        try:
            try:
                async with aclosing(read_chunks(response, record, tally, self.model_name)) as chunks:
                    async for item in chunks:
                        yield item
            except ResponseTimeout as exc:
                outcome, healthy = "failed", False
                raise upstream_error(
                    f"upstream {upstream.name} sent nothing for {self.timeout_s:g} s mid-answer", status=504
                ) from exc
            except (HTTPFailure, ValueError) as exc:
                outcome, healthy = "failed", False
                raise upstream_error(
                    f"upstream {upstream.name} broke the stream mid-answer ({type(exc).__name__}: {exc})"
                ) from exc
            except APIError:
                outcome, healthy = "failed", False
                raise
            outcome, healthy = "ok", True
            if not tally.usage:
                yield counted_usage(endpoint, record, tally, self.model_name)
        finally:
            self.num_running -= 1
            self.in_flight[upstream.url] -= 1
            if not tally.usage:
                record.completion_tokens = tally.tokens
                record.usage_source = "counted"
            await response.aclose()
            self.health.settle(upstream, outcome, healthy, probe)

    async def _ask_whole(self, endpoint: Endpoint, arm: Arm, plain: dict[str, Any]) -> dict[str, Any]:
        """One unstreamed request to one arm (an ensemble's vote), counted and judged like any other attempt."""
        assert self.client is not None
        upstream = arm.upstream
        sent = {**plain, "model": self.upstream_models.get(upstream.url) or plain.get("model")}
        probe = self.health.begin(upstream)
        outcome, healthy = "aborted", None  # unless it ends first: the client went away
        self.in_flight[upstream.url] += 1
        try:
            status, raw = await self.client.fetch(
                "POST", upstream.url + _PATHS[endpoint], sent, self._headers(upstream)
            )
            if status == 200:
                outcome, healthy = "ok", True
                return json.loads(raw)
            # 429: refused unrun (no verdict); another 4xx: it answered; a 5xx: it failed
            outcome, healthy = (
                ("rejected", None if status == 429 else True) if status < 500 else ("failed", False)
            )
            raise relayed_error(status, raw)
        except HTTPFailure:
            outcome, healthy = "failed", False
            raise
        finally:
            self.in_flight[upstream.url] -= 1
            self.health.settle(upstream, outcome, healthy, probe)

    # ---- tokenizer endpoints ------------------------------------------------------------------------------------
    async def tokenize(self, request: TokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Forward to the user's upstream (vLLM and ctxops serve ``/tokenize`` at the server root)."""
        return await self._forward("/tokenize", request, record)

    async def detokenize(self, request: DetokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Forward to the user's upstream."""
        return await self._forward("/detokenize", request, record)

    async def _forward(self, path: str, request: Any, record: RequestRecord) -> dict[str, Any]:
        assert self.client is not None
        return await forward_tokenizer(
            self.client, path, request, self._order(request, record), self.upstream_models, self.model_name,
            self._headers,
        )  # fmt: skip

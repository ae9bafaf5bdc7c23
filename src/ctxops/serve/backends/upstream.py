"""The gateway backend: requests are forwarded to OpenAI-compatible servers (vLLM, SGLang, llama.cpp, ctxops).

Each request is sent upstream as a stream with usage (whatever the client asked), so the gateway sees every token
and the final counts: streamed clients get the chunks passed through as they arrive, others get them aggregated.
The upstream is picked by :func:`ctxops.serve.routing.rank` (weighted, sticky per ``user`` or API key). A connection
error, a timeout, a 5xx or a 429 before the first chunk moves the request to the next upstream in that ranking;
a 4xx is the client's fault and is passed back as is. It knows HTTP and chunks, not tokens or blocks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from ctxops.serve.backends.base import Backend, GenerationRequest
from ctxops.serve.config import UpstreamSpec
from ctxops.serve.errors import APIError, ErrorType, upstream_error
from ctxops.serve.metrics import BackendStats
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint, is_usage_chunk
from ctxops.serve.routing import rank
from ctxops.serve.schemas import DetokenizeRequest, TokenizeRequest

logger = logging.getLogger("ctxops.serve")
_PATHS = {Endpoint.CHAT: "/chat/completions", Endpoint.COMPLETIONS: "/completions"}


class _Retry(Exception):
    """This upstream failed before answering; try the next one."""


def discover_model(upstream: UpstreamSpec, timeout_s: float = 10.0) -> str:
    """The first model id an upstream lists at ``GET {url}/models`` (blocking; for startup)."""
    key = upstream.api_key
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(f"{upstream.url}/models", timeout=timeout_s, headers=headers)
    response.raise_for_status()
    return response.json()["data"][0]["id"]


def _api_error(status: int, body: bytes) -> APIError:
    """An upstream's 4xx, re-raised with its own message, param and code."""
    try:
        error = json.loads(body)["error"]
        return APIError(
            status, str(error.get("message")), type=_error_type(error.get("type")), param=error.get("param"),
            code=error.get("code"),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        return APIError(status, body.decode(errors="replace")[:500] or f"upstream answered {status}")


def _error_type(value: Any) -> ErrorType:
    try:
        return ErrorType(value)
    except ValueError:
        return ErrorType.INVALID_REQUEST


class UpstreamBackend(Backend):
    """Forwards to several upstreams by weight, sticky per user, failing over on upstream errors."""

    def __init__(
        self, upstreams: tuple[UpstreamSpec, ...], model_name: str, timeout_s: float = 600.0
    ) -> None:
        if not upstreams:
            raise ValueError("gateway mode needs at least one upstream")
        self.upstreams = upstreams
        self.model_name = model_name
        self.capacity = sum(u.max_concurrency for u in upstreams)  # beyond it requests queue (then 429)
        self.in_flight = {u.url: 0 for u in upstreams}  # requests forwarded to each upstream and not finished
        self.timeout_s = timeout_s
        self.client: httpx.AsyncClient | None = None
        self.upstream_models = {
            u.url: u.model for u in upstreams if u.model
        }  # url -> the upstream's model id
        self.num_running = 0
        self.on_attempt: Callable[[str, str], None] = lambda upstream, outcome: (
            None
        )  # set by the server (metrics)
        self.created = int(time.time())

    async def start(self) -> None:
        """Open the connection pool (upstreams are not required to be up yet)."""
        timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 5.0))
        self.client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=None))
        for upstream in self.upstreams:
            if upstream.model is None:
                try:
                    response = await self.client.get(
                        f"{upstream.url}/models", timeout=5.0, headers=self._headers(upstream)
                    )
                    self.upstream_models[upstream.url] = response.json()["data"][0]["id"]
                except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
                    logger.warning(
                        "%s: cannot list its models (%s); forwarding the client's model name",
                        upstream.name,
                        exc,
                    )

    async def stop(self) -> None:
        """Close the pool."""
        if self.client is not None:
            await self.client.aclose()

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
        """The sticky ranking, with upstreams at their ``max_concurrency`` moved to the end (still tried last)."""
        sticky = getattr(request, "user", None) or record.key_id
        order = rank([u.url for u in self.upstreams], [u.weight for u in self.upstreams], sticky)
        ranked = [self.upstreams[i] for i in order]
        return sorted(
            ranked, key=lambda u: self.in_flight[u.url] >= u.max_concurrency
        )  # stable: keeps the rank

    def _headers(self, upstream: UpstreamSpec) -> dict[str, str]:
        key = upstream.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    # ---- generation ---------------------------------------------------------------------------------------------
    async def stream(
        self, endpoint: Endpoint, request: GenerationRequest, record: RequestRecord
    ) -> AsyncIterator[Chunk]:
        """Try upstreams in ranked order until one starts streaming; then pass its chunks through."""
        body = request.model_dump(exclude_unset=True)
        body.update(stream=True, stream_options={"include_usage": True})
        record.max_tokens = request.max_output_tokens
        failures = []
        for upstream in self._order(request, record):
            body["model"] = self.upstream_models.get(upstream.url) or request.model
            try:
                chunks = await self._open(upstream, endpoint, body, record)
            except _Retry as exc:
                failures.append(f"{upstream.name}: {exc}")
                self.on_attempt(upstream.name, "retried")
                continue
            self.on_attempt(upstream.name, "ok")
            self.num_running += 1
            self.in_flight[upstream.url] += 1
            try:
                async for item in chunks:
                    yield item
            finally:
                self.num_running -= 1
                self.in_flight[upstream.url] -= 1
                await chunks.aclose()  # type: ignore[attr-defined]
            return
        raise upstream_error("every upstream failed: " + "; ".join(failures))

    async def _open(
        self, upstream: UpstreamSpec, endpoint: Endpoint, body: dict[str, Any], record: RequestRecord
    ) -> AsyncIterator[Chunk]:
        """Send the request and read its first chunk; raise _Retry if this upstream failed before answering."""
        assert self.client is not None
        try:
            request = self.client.build_request(
                "POST", upstream.url + _PATHS[endpoint], json=body, headers=self._headers(upstream)
            )
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            await response.aclose()
            raise _Retry(f"answered {response.status_code}")
        if response.status_code >= 400:
            raw = await response.aread()
            await response.aclose()
            raise _api_error(response.status_code, raw)
        chunks = self._relay(response, record)
        try:
            first = await anext(chunks)
        except (httpx.HTTPError, StopAsyncIteration) as exc:
            await chunks.aclose()
            raise _Retry(f"the stream broke before the first chunk ({type(exc).__name__})") from exc
        record.upstream = upstream.name
        return _prepend(first, chunks)

    async def _relay(self, response: httpx.Response, record: RequestRecord) -> AsyncIterator[Chunk]:
        """Parse the upstream's SSE stream into chunks, noting timings and usage in the record."""
        last_token = None
        try:
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                item = json.loads(data)
                if "error" in item:
                    error = item["error"]
                    raise APIError(
                        502, f"the upstream failed mid-stream: {error.get('message')}", type=ErrorType.SERVER
                    )
                item["model"], item["id"] = self.model_name, record.request_id  # the gateway's names and ids
                now = time.perf_counter()
                if is_usage_chunk(item):
                    _note_usage(record, item["usage"])
                elif _has_content(item):
                    if record.ttft_s is None:
                        record.ttft_s = record.elapsed()
                    elif last_token is not None:
                        record.token_gaps_s.append(now - last_token)
                    last_token = now
                for choice in item.get("choices") or []:
                    record.finish_reason = choice.get("finish_reason") or record.finish_reason
                yield item
        finally:
            await response.aclose()

    # ---- tokenizer endpoints ------------------------------------------------------------------------------------
    async def tokenize(self, request: TokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Forward to the user's upstream (vLLM and ctxops serve ``/tokenize`` at the server root)."""
        return await self._forward("/tokenize", request, record)

    async def detokenize(self, request: DetokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Forward to the user's upstream."""
        return await self._forward("/detokenize", request, record)

    async def _forward(self, path: str, request: Any, record: RequestRecord) -> dict[str, Any]:
        assert self.client is not None
        failures = []
        for upstream in self._order(request, record):
            body = request.model_dump(exclude_unset=True)
            body["model"] = self.upstream_models.get(upstream.url) or body.get("model") or self.model_name
            try:
                response = await self.client.post(
                    upstream.url.removesuffix("/v1") + path, json=body, headers=self._headers(upstream)
                )
            except httpx.HTTPError as exc:
                failures.append(f"{upstream.name}: {type(exc).__name__}")
                continue
            if response.status_code >= 500:
                failures.append(f"{upstream.name}: answered {response.status_code}")
                continue
            if response.status_code >= 400:
                raise _api_error(response.status_code, response.content)
            return response.json()
        raise upstream_error("every upstream failed: " + "; ".join(failures))


async def _prepend(first: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()  # type: ignore[attr-defined]


def _has_content(item: Chunk) -> bool:
    for choice in item.get("choices") or []:
        if choice.get("text") or (choice.get("delta") or {}).get("content"):
            return True
    return False


def _note_usage(record: RequestRecord, used: dict[str, Any]) -> None:
    record.prompt_tokens = used.get("prompt_tokens")
    record.completion_tokens = used.get("completion_tokens")
    details = used.get("prompt_tokens_details") or {}
    record.cached_tokens = details.get("cached_tokens")

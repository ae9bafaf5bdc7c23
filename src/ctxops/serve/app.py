"""The HTTP API in front of one :class:`~ctxops.serve.backends.Backend`.

Routes: OpenAI's ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``; vLLM's ``/tokenize`` and
``/detokenize``; ``/health`` and ``/metrics``; ``/v1/feedback`` (a user's score of an answer); a gateway with
routes adds ``GET/PUT /admin/routes`` (:mod:`ctxops.serve.admin`).

Every generation request takes the same path: lifecycle (503) -> API key (401) -> body size (413) -> schema (400)
-> model name (404) -> in-flight cap (429) -> backend. Errors before the first token come back as OpenAI error
objects with the right status; a stream that fails later ends with an ``error`` event. Every generation request,
answered or refused, becomes one request-log row and one metrics observation. The app knows requests, not blocks.

Nothing heavy runs on the event loop: a large body is parsed in a worker thread (the backend tokenizes in one), so
``/health`` answers at once under any load. When the backend dies, ``/health`` turns 503 ``failed`` at once, every
request gets 503, ``ctxops:engine_healthy`` reads 0, and the runner drains and exits non-zero for a supervisor to
restart the process. ``/openapi.json`` describes every route; with API keys it needs one, as ``/metrics`` does
unless ``metrics_auth`` is off. ``/health`` is always open (load balancers probe it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from ctxops.serve.admin import RoutesAdmin
from ctxops.serve.auth import KeyStore
from ctxops.serve.backends.base import Backend, GenerationRequest
from ctxops.serve.browser_auth import BrowserKeyGate
from ctxops.serve.config import ServerConfig
from ctxops.serve.errors import APIError, internal_error, model_not_found
from ctxops.serve.feedback import post_feedback
from ctxops.serve.guard import Guard, GuardMetrics
from ctxops.serve.limits import Admission, ServerState, read_body
from ctxops.serve.metrics import ServerMetrics
from ctxops.serve.openapi import build_openapi
from ctxops.serve.request_log import RequestLog, RequestRecord
from ctxops.serve.responses import Chunk, Endpoint, aggregate, is_usage_chunk, sse
from ctxops.serve.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
    parse_body,
)

logger = logging.getLogger("ctxops.serve")
_DISCONNECT_POLL_S = 0.5  # seconds between checks that a non-streaming client is still connected
_PARSE_ON_LOOP_BYTES = 64 * 2**10  # bodies larger than this are parsed in a worker thread


@dataclass(frozen=True)
class Pages:
    """Browser pages served beside the API: routes under one path prefix (the caller builds them)."""

    prefix: str  # e.g. "/dashboard": every route's path starts with it, and the API keys guard it
    routes: Sequence[BaseRoute]


class EventStream(StreamingResponse):
    """An SSE response whose body generator is always closed, even when the client disconnects mid-send."""

    media_type = "text/event-stream"

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):  # closing aborts the request and frees its KV blocks
                await self.body_iterator.aclose()  # type: ignore[union-attr]


class Server:
    """One server: config, backend, admission, auth, metrics and request log, wired into a FastAPI app."""

    def __init__(
        self,
        config: ServerConfig,
        backend: Backend,
        on_fatal: Callable[[BaseException], None] | None = None,
        pages: Pages | None = None,
    ):
        self.config = config
        self.pages = pages  # browser pages beside the API (the dashboard), guarded by the API keys
        self.backend = backend
        self.on_fatal = on_fatal  # called if the backend cannot start or dies (the runner drains and exits)
        self.admission = Admission(config.max_queue)
        self.keys = KeyStore(config.api_keys)
        self.metrics = ServerMetrics(backend.model_name, backend.stats, lambda: self.admission.num_in_flight)
        if hasattr(backend, "on_attempt"):  # gateway: count attempts per upstream
            backend.on_attempt = self.metrics.upstream_attempt
        self.log = RequestLog(config.request_log, config.log_prompts) if config.request_log else None
        self.guard = (
            Guard(config.guard, GuardMetrics(self.metrics.registry, backend.model_name))
            if config.guard
            else None
        )
        self.startup_error: BaseException | None = None
        backend.on_fatal = self._backend_died
        self.admin = (
            RoutesAdmin(backend, config.admin_key, config.routes_file)
            if getattr(backend, "router", None) is not None
            else None
        )  # a gateway with routes: GET/PUT /admin/routes
        self._openapi: dict[str, Any] | None = None
        self.app = self._build_app()
        self._fast_routes = {
            "/v1/chat/completions": self.chat_completions,
            "/v1/completions": self.completions,
        }

    # ---- app and lifecycle ------------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI(
            title="ctxops", lifespan=self._lifespan, docs_url=None, redoc_url=None, openapi_url=None
        )  # /openapi.json is a route of ours: it needs the API key when keys are set
        app.add_api_route("/v1/chat/completions", self.chat_completions, methods=["POST"])
        app.add_api_route("/v1/completions", self.completions, methods=["POST"])
        app.add_api_route("/v1/models", self.models, methods=["GET"])
        app.add_api_route("/tokenize", self.tokenize, methods=["POST"])
        app.add_api_route("/detokenize", self.detokenize, methods=["POST"])
        app.add_api_route("/health", self.health, methods=["GET"])
        app.add_api_route("/metrics", self.prometheus, methods=["GET"])
        app.add_api_route("/openapi.json", self.openapi, methods=["GET"], include_in_schema=False)
        app.add_api_route("/v1/feedback", self.feedback, methods=["POST"])
        if self.admin is not None:
            app.add_api_route("/admin/routes", self.admin.get, methods=["GET"], include_in_schema=False)
            app.add_api_route("/admin/routes", self.admin.put, methods=["PUT"], include_in_schema=False)
        app.add_exception_handler(StarletteHTTPException, self._http_error)  # type: ignore[arg-type]
        if self.pages is not None:
            app.router.routes.extend(self.pages.routes)
            app.add_middleware(BrowserKeyGate, keys=self.keys, prefixes=(self.pages.prefix,))
        app.state.server = self
        return app

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry uvicorn runs: ``app``, except that the two generation routes go straight to their handlers.

        FastAPI's middleware, routing and dependency layers cost about 0.3 ms of CPU per request (15% of what a
        gateway spends forwarding one); these handlers read and validate their own bodies and answer every error
        themselves, so nothing of those layers is used. A crash inside one still becomes a 500 error object.
        """
        handler = self._fast_routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive))
        except Exception as exc:
            response = self._as_api_error(exc).response()
        await response(scope, receive, send)

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        starting = asyncio.create_task(self._start_backend())
        try:
            yield
        finally:
            starting.cancel()
            await self.backend.stop()
            if self.log is not None:
                self.log.close()

    async def _start_backend(self) -> None:
        try:
            await self.backend.start()
        except Exception as exc:
            logger.error("the backend failed to start: %s", exc)
            self.startup_error = exc
            if self.on_fatal is not None:
                self.on_fatal(exc)
            return
        self.admission.ready(self.backend.capacity)
        logger.info("ready: serving %r", self.backend.model_name)

    def _backend_died(self, exc: BaseException) -> None:
        """The backend can serve nothing more: refuse everything and let the runner drain and exit non-zero."""
        logger.error(
            "the engine died (%s: %s); draining, then exiting for a restart", type(exc).__name__, exc
        )
        self.admission.fail()
        if self.on_fatal is not None:
            self.on_fatal(exc)

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new requests (503) and wait up to ``timeout_s`` for in-flight ones; True if all finished."""
        return await self.admission.drain(timeout_s)

    # ---- generation -------------------------------------------------------------------------------------------
    async def chat_completions(self, request: Request) -> Response:
        """``POST /v1/chat/completions``."""
        return await self._generate(request, Endpoint.CHAT)

    async def completions(self, request: Request) -> Response:
        """``POST /v1/completions``."""
        return await self._generate(request, Endpoint.COMPLETIONS)

    async def _admit(self, request: Request, endpoint: Endpoint, record: RequestRecord) -> GenerationRequest:
        self.admission.check_open()
        record.key_id = self.keys.check(request.headers.get("authorization"))
        body = await read_body(request, self.config.max_body_size)
        schema = ChatCompletionRequest if endpoint is Endpoint.CHAT else CompletionRequest
        parsed: GenerationRequest = await _parse(schema, body)
        record.model, record.user, record.stream = parsed.model, parsed.user, parsed.stream
        self._check_model(parsed.model)
        if self.guard is not None:  # before a queue slot: a blocked request costs no capacity
            if len(body) > _PARSE_ON_LOOP_BYTES:
                await asyncio.to_thread(self.guard.check_request, endpoint, parsed, record)
            else:
                self.guard.check_request(endpoint, parsed, record)
        self.admission.acquire()
        return parsed

    async def _generate(self, request: Request, endpoint: Endpoint) -> Response:
        prefix = "chatcmpl" if endpoint is Endpoint.CHAT else "cmpl"
        record = RequestRecord(request_id=f"{prefix}-{uuid.uuid4().hex}", endpoint=endpoint.value)
        try:
            parsed = await self._admit(request, endpoint, record)
        except APIError as exc:
            return self._refuse(record, exc, acquired=False)
        chunks = self.backend.stream(endpoint, parsed, record)
        if self.guard is not None and self.guard.checks_output:
            chunks = self.guard.filter_output(endpoint, chunks, record)
        try:
            first = await anext(chunks)  # request-level errors surface here, before any byte is sent
        except Exception as exc:
            await chunks.aclose()
            return self._refuse(record, self._as_api_error(exc), acquired=True)
        headers = {
            "x-request-id": record.request_id,
            **({"x-ctxops-upstream": record.upstream} if record.upstream else {}),
        }
        if parsed.stream:
            return EventStream(self._events(first, chunks, parsed.include_usage, record), headers=headers)
        return await self._complete(request, endpoint, first, chunks, record, headers)

    async def _complete(
        self,
        request: Request,
        endpoint: Endpoint,
        first: Chunk,
        chunks: AsyncIterator[Chunk],
        record: RequestRecord,
        headers: dict,
    ) -> Response:
        items = [first]
        collect = asyncio.ensure_future(_drain_into(chunks, items))
        hung_up = False
        try:
            while not collect.done():  # a client that hangs up stops its request (and frees its KV blocks)
                await asyncio.wait({collect}, timeout=_DISCONNECT_POLL_S)
                if not collect.done() and await request.is_disconnected():
                    hung_up = True
                    collect.cancel()
            await collect
        except asyncio.CancelledError:
            if not hung_up:
                collect.cancel()
                raise
            record.finish_reason = "abort"
        except Exception as exc:
            return self._refuse(record, self._as_api_error(exc), acquired=True)
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
            if record.finish_reason is None and record.status < 400:
                record.finish_reason = "abort"
        self._finish(record)
        return JSONResponse(aggregate(endpoint, items), headers=headers)

    async def _events(
        self, first: Chunk, chunks: AsyncIterator[Chunk], include_usage: bool, record: RequestRecord
    ) -> AsyncIterator[bytes]:
        """SSE frames: the chunks (usage chunk only if asked), then ``[DONE]``; always finishes the record."""
        try:
            item: Chunk | None = first
            while item is not None:
                if not is_usage_chunk(item):
                    yield sse({**item, "usage": None} if include_usage else item)
                elif include_usage:
                    yield sse(item)
                item = await anext(chunks, None)
            yield sse("[DONE]")
        except Exception as exc:  # headers are sent: report in the stream, as OpenAI does
            error = self._as_api_error(exc)
            record.status, record.error_code = error.status, error.code
            yield sse(error.body())
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
            if record.finish_reason is None:
                record.finish_reason = "abort"  # the client went away, or the stream failed
            self._finish(record)

    # ---- bookkeeping ------------------------------------------------------------------------------------------
    def _as_api_error(self, exc: BaseException) -> APIError:
        if isinstance(exc, APIError):
            return exc
        logger.exception("request failed", exc_info=exc)
        return internal_error(f"the request failed inside the server: {type(exc).__name__}: {exc}")

    def _refuse(self, record: RequestRecord, exc: APIError, acquired: bool) -> Response:
        record.status, record.error_code = exc.status, exc.code
        self._finish(record, acquired)
        return exc.response()

    def _finish(self, record: RequestRecord, acquired: bool = True) -> None:
        """Close the books on one generation request: latency, metrics, log row, in-flight slot."""
        record.e2e_s = record.elapsed()
        if acquired:
            self.admission.release()
        self.metrics.observe(record)
        if self.log is not None:
            self.log.append(record)

    def _check_model(self, model: str | None) -> None:
        if model is not None and model != self.backend.model_name:
            raise model_not_found(model, [self.backend.model_name])

    # ---- other endpoints --------------------------------------------------------------------------------------
    def _refuse_key(self, request: Request) -> Response | None:
        """The 401 for a request without a valid API key (None when it has one, or no keys are set)."""
        try:
            self.keys.check(request.headers.get("authorization"))
        except APIError as exc:
            return exc.response()
        return None

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``."""
        if refused := self._refuse_key(request):
            return refused
        return JSONResponse({"object": "list", "data": [self.backend.model_card()]})

    async def tokenize(self, request: Request) -> Response:
        """``POST /tokenize`` (vLLM's shape)."""
        return await self._tokenizer_call(request, TokenizeRequest, self.backend.tokenize)

    async def detokenize(self, request: Request) -> Response:
        """``POST /detokenize`` (vLLM's shape)."""
        return await self._tokenizer_call(request, DetokenizeRequest, self.backend.detokenize)

    async def _tokenizer_call(self, request: Request, schema: type, call: Callable) -> Response:
        """One tokenize/detokenize call, logged as a row of its own (no generation metrics, no queue slot).

        The row's endpoint is ``tokenize`` or ``detokenize`` and its ``prompt_tokens`` the tokens counted or decoded.
        """
        endpoint = request.url.path.strip("/")
        record = RequestRecord(request_id=f"{endpoint[:5]}-{uuid.uuid4().hex}", endpoint=endpoint)
        try:
            self.admission.check_open()
            record.key_id = self.keys.check(request.headers.get("authorization"))
            parsed: Any = await _parse(schema, await read_body(request, self.config.max_body_size))
            record.model, record.user = parsed.model, getattr(parsed, "user", None)
            self._check_model(parsed.model)
            result = await call(parsed, record)
            record.prompt_tokens = result["count"] if "count" in result else len(parsed.tokens)
            response: Response = JSONResponse(result)
        except Exception as exc:
            error = self._as_api_error(exc)
            record.status, record.error_code = error.status, error.code
            response = error.response()
        record.e2e_s = record.elapsed()
        if self.log is not None:
            self.log.append(record)
        return response

    async def feedback(self, request: Request) -> Response:
        """``POST /v1/feedback``: a user's score of one answer, for the A/B analysis."""
        return await post_feedback(request, self.log.store if self.log else None, self.keys.check)

    async def health(self) -> Response:
        """``GET /health``: 200 when ready; 503 while starting, draining or failed (load balancers route away)."""
        failure = self.startup_error or self.backend.failure
        if failure is not None:
            body = {"status": ServerState.FAILED.value, "error": f"{type(failure).__name__}: {failure}"}
            return JSONResponse(body, status_code=503)
        state = self.admission.state
        return JSONResponse({"status": state.value}, status_code=200 if state is ServerState.READY else 503)

    async def prometheus(self, request: Request) -> Response:
        """``GET /metrics`` in Prometheus' text format (needs an API key when keys are set and metrics_auth is on)."""
        if self.config.metrics_auth and (refused := self._refuse_key(request)):
            return refused
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        """``GET /openapi.json``: the API's OpenAPI 3.1 description (needs an API key when keys are set)."""
        if refused := self._refuse_key(request):
            return refused
        if self._openapi is None:
            self._openapi = build_openapi(self.app)
        return JSONResponse(self._openapi)

    async def _http_error(self, request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return APIError(
            exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code=code
        ).response()


async def _parse(schema: type, body: bytes) -> Any:
    """Validate a body; large ones in a worker thread, so parsing megabytes never blocks the loop."""
    if len(body) > _PARSE_ON_LOOP_BYTES:
        return await asyncio.to_thread(parse_body, schema, body)
    return parse_body(schema, body)


async def _drain_into(chunks: AsyncIterator[Chunk], items: list[Chunk]) -> None:
    async for item in chunks:
        items.append(item)


def create_app(
    config: ServerConfig, backend: Backend, on_fatal: Callable[[BaseException], None] | None = None
) -> FastAPI:
    """The FastAPI app serving ``backend`` under ``config`` (its :class:`Server` is ``app.state.server``)."""
    return Server(config, backend, on_fatal).app

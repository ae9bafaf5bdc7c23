"""The contract between the HTTP layer and whatever produces tokens.

A backend turns a validated request into a stream of OpenAI chunks (see :mod:`ctxops.serve.responses`) and fills
in the request's :class:`~ctxops.serve.request_log.RequestRecord` (token counts, timings, finish reason) as it
goes. Request-level failures (a prompt too long, an unknown token id) raise :class:`~ctxops.serve.errors.APIError`
before the first chunk, so the server can still answer with a proper status. Closing the stream early aborts the
request. Backends know requests and tokens; auth, limits, metrics and the request log stay in the app.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

from ctxops.serve.metrics import BackendStats
from ctxops.serve.request_log import RequestRecord
from ctxops.serve.responses import Chunk, Endpoint
from ctxops.serve.schemas import ChatCompletionRequest, CompletionRequest, DetokenizeRequest, TokenizeRequest

GenerationRequest = ChatCompletionRequest | CompletionRequest


class Backend(ABC):
    """Produces completions for the server; one instance per server process."""

    model_name: str  # the name clients send in ``model``
    capacity: int  # requests run at once; the server queues up to ``max_queue`` more
    on_fatal: Callable[[BaseException], None] | None = None  # set by the server: the backend died for good

    @property
    def failure(self) -> BaseException | None:
        """Why the backend can serve nothing any more (a dead engine), or None while it is healthy."""
        return None

    @abstractmethod
    async def start(self) -> None:
        """Load the model or reach the upstreams; the server answers 503 until this returns."""

    @abstractmethod
    async def stop(self) -> None:
        """Release everything (called once, after draining)."""

    @abstractmethod
    def stats(self) -> BackendStats:
        """A cheap snapshot for ``/metrics``."""

    @abstractmethod
    def model_card(self) -> dict[str, Any]:
        """This backend's entry in ``GET /v1/models``."""

    @abstractmethod
    def stream(
        self, endpoint: Endpoint, request: GenerationRequest, record: RequestRecord
    ) -> AsyncIterator[Chunk]:
        """Chunks of the completion, ending with a usage-only chunk; raises APIError before the first on bad input."""

    @abstractmethod
    async def tokenize(self, request: TokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Answer ``/tokenize`` as vLLM does: ``count``, ``max_model_len``, ``tokens`` (and ``token_strs`` if asked)."""

    @abstractmethod
    async def detokenize(self, request: DetokenizeRequest, record: RequestRecord) -> dict[str, Any]:
        """Answer ``/detokenize`` as vLLM does: ``{"prompt": text}``."""

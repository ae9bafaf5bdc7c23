"""The endpoint target: any OpenAI-compatible server (``ctxops serve``, vLLM, SGLang, llama.cpp), over HTTP.

Requests stream (``stream_options.include_usage``) so TTFT is measured from the request to the first text chunk.
429, 5xx, timeouts and dropped connections are retried with exponential backoff (``Retry-After`` honoured). Lengths
are counted by the server's ``/tokenize`` (vLLM's route) where it exists, else by a local ``--tokenizer``, else
estimated with a warning. With ``--api chat`` the answer prefix cannot be sent (OpenAI's chat API has no way to
start the assistant's turn), so it is left out and recorded. A verbatim sample (RULER's data) is sent as RULER's
prediction script sends it: ``input + answer_prefix`` as the completions prompt, or as the one user message of a
chat request. This module knows HTTP, not tasks or scoring.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from ctxops.evals.prompt import EstimateCounter, PromptStyle, TokenCounter, TokenizerCounter, render_raw
from ctxops.evals.sample import Sample
from ctxops.evals.targets.base import Completion, Target, TargetError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class Api(StrEnum):
    """Which OpenAI route to call."""

    CHAT = "chat"
    COMPLETIONS = "completions"


@dataclass(frozen=True)
class EndpointConfig:
    """How to reach and call the server."""

    url: str  # e.g. http://localhost:8000 or http://localhost:8000/v1
    model_name: str
    api: Api = Api.CHAT
    api_key: str | None = None
    timeout_s: float = 600.0  # per request
    max_retries: int = 4
    backoff_s: float = 0.5  # first retry waits about this long; each later one doubles
    tokenizer: str | None = None  # a local model/tokenizer directory to count with when /tokenize is absent

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(
                f"--endpoint must be an http(s) URL such as http://localhost:8000/v1, got {self.url!r}"
            )
        if not self.model_name:
            raise ValueError(
                "--model-name is required with --endpoint (the name the server serves the model as)"
            )
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_s < 0:
            raise ValueError("timeout must be positive, retries and backoff non-negative")

    @property
    def root(self) -> str:
        """The server root (``/v1`` stripped): where ``/tokenize`` lives."""
        url = self.url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def chat_fields(prompt: str, answer_prefix: str, with_prefix: bool) -> dict[str, Any]:
    """Chat request fields; with the prefix, the assistant turn is left open for the model to continue."""
    messages = [{"role": "user", "content": prompt}]
    if not (with_prefix and answer_prefix):
        return {"messages": messages}
    messages.append({"role": "assistant", "content": answer_prefix})
    return {"messages": messages, "add_generation_prompt": False, "continue_final_message": True}


class ServerCounter:
    """Counts with the server's ``/tokenize`` (synchronous: samples are built in worker threads)."""

    def __init__(self, config: EndpointConfig, chat_prefix: bool = False) -> None:
        self.config = config
        self.chat_prefix = chat_prefix  # send the answer prefix as an open assistant turn (vLLM's option)
        self.client = httpx.Client(base_url=config.root, headers=config.headers, timeout=60.0)

    def body(self, prompt: str, answer_prefix: str) -> dict[str, Any]:
        if self.config.api is Api.CHAT:
            return {"model": self.config.model_name, **chat_fields(prompt, answer_prefix, self.chat_prefix)}
        return {"model": self.config.model_name, "prompt": render_raw(prompt, answer_prefix)}

    def __call__(self, prompt: str, answer_prefix: str) -> int:
        response = self.client.post("/tokenize", json=self.body(prompt, answer_prefix))
        response.raise_for_status()
        data = response.json()
        return int(data.get("count", len(data.get("tokens", []))))


class EndpointTarget(Target):
    """Evaluate a model behind an OpenAI-compatible HTTP server."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.client = httpx.AsyncClient(
            base_url=config.root,
            headers=config.headers,
            timeout=httpx.Timeout(config.timeout_s, connect=10.0),
        )
        self._counter: TokenCounter = EstimateCounter()
        self.chat_prefix = False  # whether chat requests carry the answer prefix (set by start())
        self.counting = "estimate"
        self._max_model_len: int | None = None
        self.warnings: list[str] = []

    @property
    def count_tokens(self) -> TokenCounter:
        return self._counter

    @property
    def counts_exactly(self) -> bool:
        return self.counting != "estimate"

    @property
    def max_model_len(self) -> int | None:
        return self._max_model_len

    async def start(self) -> None:
        """Check the server answers, then pick the most exact token counter available."""
        try:
            response = await self.client.get("/v1/models")
        except httpx.TransportError as exc:
            raise TargetError(
                f"cannot reach {self.config.url} ({type(exc).__name__}: {exc}); is the server running and the URL "
                "right? Start one with e.g. `ctxops serve MODEL --port 8000` and pass --endpoint http://localhost:8000/v1"
            ) from exc
        if response.status_code in (401, 403):
            raise TargetError(
                f"{self.config.url} refused the request ({response.status_code}); pass --api-key"
            )
        if response.status_code == 200:
            served = [m.get("id") for m in response.json().get("data", [])]
            if served and self.config.model_name not in served:
                raise TargetError(
                    f"{self.config.url} does not serve {self.config.model_name!r}; it serves {served} (--model-name)"
                )
        await asyncio.to_thread(self._pick_counter)

    def _pick_counter(self) -> None:
        server = ServerCounter(self.config, chat_prefix=self.config.api is Api.CHAT)
        if server.chat_prefix:  # does the server continue an open assistant turn (vLLM, ctxops)?
            try:
                probe = server.client.post("/tokenize", json=server.body("hello", "The answer is"))
                server.chat_prefix = probe.status_code == 200
            except httpx.HTTPError:
                server.chat_prefix = False
            self.chat_prefix = server.chat_prefix
        try:
            response = server.client.post("/tokenize", json=server.body("hello", ""))
            if response.status_code == 200 and {"count", "tokens"} & set(response.json()):
                self._counter, self.counting = server, "server /tokenize"
                self._max_model_len = response.json().get("max_model_len")
                return
        except (httpx.HTTPError, ValueError):
            pass
        if self.config.tokenizer:
            from ctxops.models.tokenizer import Tokenizer

            tokenizer = Tokenizer(self.config.tokenizer)
            style = PromptStyle.CHAT if self.config.api is Api.CHAT else PromptStyle.RAW
            counter = TokenizerCounter(tokenizer, style)
            if style is PromptStyle.CHAT:
                self._counter = lambda prompt, prefix: counter(prompt, "")  # the chat API sends no prefix
            else:
                self._counter = counter
            self.counting = f"local tokenizer {self.config.tokenizer}"
            return
        self.warnings.append(
            f"{self.config.url} has no /tokenize and no --tokenizer was given: lengths are ESTIMATED at "
            f"{EstimateCounter.chars_per_token:g} characters per token and may be off by 20% or more"
        )

    def _request(self, sample: Sample) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.config.model_name,
            "max_tokens": sample.max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if sample.verbatim:  # RULER's prepared data, sent as RULER's call_api.py sends it
            if self.config.api is Api.CHAT:
                return "/v1/chat/completions", {
                    **body,
                    "messages": [{"role": "user", "content": sample.verbatim_text}],
                }
            return "/v1/completions", {**body, "prompt": sample.verbatim_text}
        if self.config.api is Api.CHAT:
            return "/v1/chat/completions", {
                **body,
                **chat_fields(sample.prompt, sample.answer_prefix, self.chat_prefix),
            }
        return "/v1/completions", {**body, "prompt": render_raw(sample.prompt, sample.answer_prefix)}

    async def generate(self, sample: Sample) -> Completion:
        path, body = self._request(sample)
        for attempt in range(self.config.max_retries + 1):
            try:
                return await self._stream(path, body, attempt + 1)
            except _Retryable as exc:
                if attempt == self.config.max_retries:
                    raise TargetError(f"gave up after {attempt + 1} attempts: {exc}") from exc
                delay = exc.retry_after or self.config.backoff_s * 2**attempt * (0.75 + 0.5 * random.random())
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _stream(self, path: str, body: dict[str, Any], attempt: int) -> Completion:
        start = time.perf_counter()
        ttft, pieces, usage, finish = None, [], {}, None
        try:
            async with self.client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    _raise_for_status(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    chunk = json.loads(line[5:])
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        text = choice.get("text") or (choice.get("delta") or {}).get("content") or ""
                        if text and ttft is None:
                            ttft = time.perf_counter() - start
                        pieces.append(text)
                        finish = choice.get("finish_reason") or finish
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        details = usage.get("prompt_tokens_details") or {}
        return Completion(
            text="".join(pieces),
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            cached_tokens=details.get("cached_tokens"),
            ttft_s=ttft,
            e2e_s=time.perf_counter() - start,
            finish_reason=finish,
            attempts=attempt,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "endpoint",
            "url": self.config.url,
            "served_model_name": self.config.model_name,
            "api": self.config.api.value,
            "answer_prefix": (
                "sent (continue_final_message)"
                if self.chat_prefix
                else "omitted (chat API)"
                if self.config.api is Api.CHAT
                else "sent"
            ),
            "tokenizer": self.counting,
        }

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in self.describe().items() if k != "tokenizer"}

    async def close(self) -> None:
        await self.client.aclose()


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _raise_for_status(response: httpx.Response) -> None:
    try:
        message = response.json().get("error", {}).get("message") or response.text
    except ValueError:
        message = response.text
    text = f"HTTP {response.status_code} from {response.request.url}: {message[:500]}"
    if response.status_code in RETRY_STATUS:
        after = response.headers.get("retry-after")
        raise _Retryable(text, float(after) if after and after.replace(".", "", 1).isdigit() else None)
    raise TargetError(text)

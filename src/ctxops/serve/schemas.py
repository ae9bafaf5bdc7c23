"""Request bodies of the HTTP API as pydantic models, with OpenAI's field names plus vLLM's sampling extras.

Parsing happens once, at the door: :func:`parse_body` turns a raw body into a model or raises a 400 whose message
and ``param`` name the offending field. Features the server does not implement (``n > 1``, tools, penalties,
``echo``) are refused here with a clear message rather than silently ignored. Unknown extra fields are accepted and
ignored, as OpenAI-compatible servers do. Responses are plain dicts built in :mod:`ctxops.serve.responses`.
Numeric fields carry the ranges of :mod:`ctxops.engine.limits` (finite floats only), the same table the engine's
``SamplingParams`` checks, so a value is judged the same over HTTP, on the CLI and in Python. This module knows
JSON, not engines.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ctxops.engine import limits
from ctxops.serve.errors import APIError, bad_request

_Model = TypeVar("_Model", bound=BaseModel)
TokenId = Annotated[int, Field(**limits.TOKEN_ID.constraints())]
_UNION_TAGS = ("str", "int", "list", "dict", "function", "union", "literal", "json", "none", "bool", "float")


class _Body(BaseModel):
    # strict: a value of the wrong JSON type is refused (0 for a boolean, "5" for a token id), as OpenAI does,
    # instead of being coerced; an integer is still a valid number
    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, strict=True)


class StreamOptions(_Body):
    """``stream_options`` of a streamed request."""

    include_usage: bool = False
    """Send a last chunk with token usage (and ``usage: null`` on every other chunk)."""


class ContentPart(_Body):
    """One part of a message's content list."""

    type: str
    """Only ``text`` parts are supported."""
    text: str | None = None

    @field_validator("type")
    @classmethod
    def _text_only(cls, value: str) -> str:
        if value != "text":
            raise ValueError(f"content parts of type {value!r} are not supported; send text parts only")
        return value


class ChatMessage(_Body):
    """One chat message; content is a string or a list of text parts."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message content as one string (text parts joined)."""
        if isinstance(self.content, list):
            return "".join(part.text or "" for part in self.content)
        return self.content or ""


class _SamplingBody(_Body):
    """Fields shared by chat and text completions."""

    model: str
    """A name from ``GET /v1/models``."""
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, **limits.MAX_TOKENS.constraints())
    """Most tokens to generate; default: whatever fits in the model's context."""
    temperature: float = Field(default=1.0, **limits.TEMPERATURE.constraints())
    top_p: float = Field(default=1.0, **limits.TOP_P.constraints())
    n: int = 1
    seed: int | None = Field(default=None, **limits.SEED.constraints())
    stop: str | list[str] | None = None
    user: str | None = None
    """End-user id: logged, and used to keep a user on one upstream in gateway mode."""
    presence_penalty: float = Field(default=0.0, allow_inf_nan=False)
    frequency_penalty: float = Field(default=0.0, allow_inf_nan=False)
    logit_bias: dict[str, float] | None = None
    # vLLM's extra sampling fields
    top_k: int = Field(default=-1, **limits.TOP_K.constraints())
    min_tokens: int = Field(default=0, **limits.MIN_TOKENS.constraints())
    ignore_eos: bool = False
    stop_token_ids: list[TokenId] | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError(
                f"must be 1 (got {value}): ctxops returns one choice per request; send several requests"
            )
        return value

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, value: float) -> float:
        if value != 0.0:
            raise ValueError("penalties are not supported by this server; leave it at 0")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            raise ValueError("logit_bias is not supported by this server")
        return value

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if any(not s for s in stops):
            raise ValueError("stop strings must be non-empty")
        return value

    @property
    def stop_list(self) -> list[str]:
        """``stop`` as a list."""
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_SamplingBody):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, **limits.MAX_TOKENS.constraints())
    """OpenAI's newer name for ``max_tokens``; wins when both are given."""
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, **limits.LOGPROBS.constraints())
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    add_generation_prompt: bool = True
    """vLLM extra: end the rendered prompt with the assistant header."""
    continue_final_message: bool = False
    """vLLM extra: leave the final assistant message open so the model continues it (an answer prefix)."""

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError("tool calling is not supported by this server")
        return value

    @field_validator("response_format")
    @classmethod
    def _text_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and value.get("type", "text") != "text":
            raise ValueError("only response_format {'type': 'text'} is supported (no JSON mode)")
        return value

    @property
    def max_output_tokens(self) -> int | None:
        """``max_completion_tokens`` or else ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        """Alternatives per token the engine should return (None: no logprobs)."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionRequest(_SamplingBody):
    """``POST /v1/completions``; the prompt is text or token ids."""

    prompt: str | list[TokenId] | list[str] | list[list[TokenId]]
    logprobs: int | None = Field(default=None, **limits.LOGPROBS.constraints())
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None
    add_special_tokens: bool = True
    """vLLM extra: prepend BOS when tokenizing a text prompt."""

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and value and isinstance(value[0], str | list):
            if len(value) != 1:
                raise ValueError("batches of several prompts are not supported; send one prompt per request")
            value = value[0]
        if not value:
            raise ValueError("the prompt is empty")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not supported by this server")
        return value

    @field_validator("best_of")
    @classmethod
    def _no_best_of(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("best_of must be 1: ctxops returns one choice per request")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("suffix (insertion) is not supported by this server")
        return value

    @property
    def max_output_tokens(self) -> int | None:
        """The requested completion length (None: up to the context window)."""
        return self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        """Alternatives per token the engine should return (None: no logprobs)."""
        return self.logprobs


class TokenizeRequest(_Body):
    """``POST /tokenize`` (vLLM's): either ``prompt`` text or chat ``messages``."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    """Default: True for a prompt, False for messages (the chat template carries its own)."""
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    return_token_strs: bool = False


class DetokenizeRequest(_Body):
    """``POST /detokenize`` (vLLM's)."""

    model: str | None = None
    tokens: list[TokenId]


def _param(loc: tuple[int | str, ...]) -> str:
    """Pydantic's error location -> ``messages[0].role`` (union member tags dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part.split("-")[0] in _UNION_TAGS:
            continue
        else:
            out += f".{part}" if out else part
    return out


def parse_body(cls: type[_Model], raw: bytes) -> _Model:
    """Decode and validate a JSON body; any problem is a 400 naming the field."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}", code="invalid_json") from exc
    except ValueError as exc:
        raise bad_request(str(exc), code="invalid_json") from exc
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object", code="invalid_json")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from exc


def _no_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (Python's parser accepts them unless told not to)."""
    raise ValueError(f"The request body is not valid JSON: {name} is not a JSON number; send a finite number")


def _validation_error(exc: ValidationError) -> APIError:
    errors = exc.errors(include_url=False)
    # of a union's alternatives, the one that got deepest into the value says best what is wrong with it
    first = max(errors, key=lambda e: len(e["loc"]))
    param = _param(tuple(first["loc"])) or None
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "this field is required"
    return bad_request(f"Invalid value for '{param}': {message}" if param else message, param=param)

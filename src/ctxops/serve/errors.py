"""API errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with the matching status.

Every failure a client can see goes through :class:`APIError`, so status codes, error types and headers such as
``Retry-After`` are decided here once. This module knows HTTP statuses, not engines or upstreams.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from fastapi.responses import JSONResponse


class ErrorType(StrEnum):
    """OpenAI's ``error.type`` values used by the server."""

    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    RATE_LIMIT = "rate_limit_error"
    SERVER = "server_error"
    UNAVAILABLE = "service_unavailable_error"


class APIError(Exception):
    """A failure with an HTTP status, reported to the client in OpenAI's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: ErrorType = ErrorType.INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI clients parse."""
        return {
            "error": {
                "message": self.message,
                "type": self.type.value,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        """This error as an HTTP response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> APIError:
    """400: the request is malformed; ``param`` names the offending field."""
    return APIError(400, message, param=param, code=code)


def context_length_exceeded(max_model_len: int, prompt_tokens: int, max_tokens: int, param: str) -> APIError:
    """400: prompt + requested completion do not fit the model's context window (the message gives the numbers)."""
    total = prompt_tokens + max_tokens
    return APIError(
        400,
        f"This model's maximum context length is {max_model_len} tokens. However, you requested {total} tokens "
        f"({prompt_tokens} in the {param}, {max_tokens} in the completion). Please reduce the length of the "
        f"{param} or the completion.",
        param=param,
        code="context_length_exceeded",
    )


def prompt_too_large(max_model_len: int, num_bytes: int, max_bytes: int, param: str) -> APIError:
    """400 ``context_length_exceeded`` for a prompt refused by its size in bytes, before tokenizing it."""
    return APIError(
        400,
        f"This model's maximum context length is {max_model_len} tokens. However, the text of the {param} is "
        f"{num_bytes} bytes long, and no token of this model covers more than {max_bytes // max_model_len} "
        f"bytes, so it holds more than {max_model_len} tokens. Please reduce the length of the {param}.",
        param=param,
        code="context_length_exceeded",
    )


def unauthorized(message: str) -> APIError:
    """401: keys are configured and the request has none or a wrong one."""
    return APIError(
        401,
        message,
        type=ErrorType.AUTHENTICATION,
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def model_not_found(model: str, served: list[str]) -> APIError:
    """404: the request names a model this server does not serve."""
    return APIError(
        404,
        f"The model `{model}` does not exist on this server; it serves: {', '.join(served)}",
        param="model",
        code="model_not_found",
    )


def payload_too_large(limit: int) -> APIError:
    """413: the request body is over the configured limit (bytes)."""
    return APIError(
        413, f"The request body is larger than this server's limit of {limit} bytes", code="request_too_large"
    )


def queue_full(limit: int, retry_after_s: int) -> APIError:
    """429: every running slot and queue place is taken; ``Retry-After`` says when to come back (seconds)."""
    return APIError(
        429,
        f"The server is at capacity ({limit} requests in flight); retry after {retry_after_s} s",
        type=ErrorType.RATE_LIMIT,
        code="queue_full",
        headers={"Retry-After": str(retry_after_s)},
    )


def unavailable(state: str, retry_after_s: int = 1) -> APIError:
    """503: the server is starting (model loading) or draining (shutting down)."""
    reason = {
        "starting": "The server is starting (loading the model); retry shortly",
        "draining": "The server is shutting down and accepts no new requests; send them to another replica",
        "failed": "The engine failed and the server is shutting down to be restarted; send requests to another "
        "replica",
    }.get(state, f"The server is {state}")
    return APIError(
        503, reason, type=ErrorType.UNAVAILABLE, code=state, headers={"Retry-After": str(retry_after_s)}
    )


def internal_error(message: str) -> APIError:
    """500: a bug or an engine failure; the message says what failed."""
    return APIError(500, message, type=ErrorType.SERVER, code="internal_error")


def request_failed(message: str) -> APIError:
    """500: this request failed inside the engine; the engine goes on serving others."""
    return APIError(500, message, type=ErrorType.SERVER, code="request_failed")


def engine_failed() -> APIError:
    """500: the engine died while running this request; the server drains and exits to be restarted."""
    return APIError(
        500,
        "The engine failed while running this request; the server is shutting down to be restarted",
        type=ErrorType.SERVER,
        code="engine_failed",
    )


def upstream_error(message: str, status: int = 502) -> APIError:
    """502/504: every upstream failed (gateway mode)."""
    return APIError(status, message, type=ErrorType.SERVER, code="upstream_error")


def relayed_error(status: int, body: bytes) -> APIError:
    """An upstream's error answer, re-raised with its own message, type, param and code where it sent them."""
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

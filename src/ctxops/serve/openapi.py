"""The server's OpenAPI 3.1 document: every route, its request body schema and its error responses.

The routes read their bodies themselves (a byte cap first, then :func:`~ctxops.serve.schemas.parse_body`), so
FastAPI cannot see what they accept; this module puts the pydantic request models into the document, with the
limits of :mod:`ctxops.engine.limits` as JSON-schema bounds, and declares the OpenAI error shape for every status
a route can answer. Schema-driven tools (schemathesis, client generators) read it at ``GET /openapi.json``.
It knows schemas and routes, not engines.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ctxops.serve.schemas import ChatCompletionRequest, CompletionRequest, DetokenizeRequest, TokenizeRequest

_REF = "#/components/schemas/{model}"
_BODIES: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
    "/tokenize": TokenizeRequest,
    "/detokenize": DetokenizeRequest,
}
_GENERATION_ERRORS = {
    "400": "Invalid request: the message and ``param`` name the field",
    "401": "Missing or wrong API key",
    "404": "Unknown model",
    "413": "Body larger than the server's limit",
    "429": "Too many requests in flight; retry after ``Retry-After`` seconds",
    "500": "The request failed inside the server",
    "503": "Starting, draining or failed; retry elsewhere or after ``Retry-After`` seconds",
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_OBJECT = {"type": "object"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(path: str) -> dict[str, Any]:
    """The statuses a route answers, each with its body shape."""
    error = {"$ref": _REF.format(model="ErrorResponse")}
    if path in ("/v1/chat/completions", "/v1/completions"):
        ok = {
            "description": "A completion (JSON), or with ``stream`` an event stream of chunks ending in [DONE]",
            "content": {
                "application/json": {"schema": _OBJECT},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
        return {"200": ok, **{s: _json(error, d) for s, d in _GENERATION_ERRORS.items()}}
    if path in ("/tokenize", "/detokenize"):
        codes = ("400", "401", "404", "413", "500", "503")
        return {
            "200": _json(_OBJECT, "The result"),
            **{s: _json(error, _GENERATION_ERRORS[s]) for s in codes},
        }
    if path == "/v1/models":
        return {"200": _json(_OBJECT, "The served model"), "401": _json(error, _GENERATION_ERRORS["401"])}
    if path == "/health":
        health = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
        return {"200": _json(health, "Ready"), "503": _json(health, "Starting, draining or failed")}
    if path == "/metrics":
        text = {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
        return {"200": text, "401": _json(error, _GENERATION_ERRORS["401"])}
    return {"200": {"description": "OK"}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes, with request bodies and responses filled in."""
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorResponse"] = _ERROR_SCHEMA
    for model in _BODIES.values():
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    security = _security(doc)
    for path, methods in doc.get("paths", {}).items():
        for method, operation in methods.items():
            operation["responses"] = _responses(path)
            if path in _BODIES and method == "post":
                ref = {"$ref": _REF.format(model=_BODIES[path].__name__)}
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref}},
                }
            if path != "/health":
                operation["security"] = security
    return doc


def _security(doc: dict[str, Any]) -> list[dict[str, list[str]]]:
    """Bearer API keys (only enforced when the server was started with keys)."""
    doc["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
    return [{"apiKey": []}, {}]  # the empty alternative: a server without keys needs none

"""The server's OpenAPI 3.1 document: every route, its request body schema, its responses and their shapes.

The routes read their bodies themselves (a byte cap first, then :func:`~ctxops.serve.schemas.parse_body`), so
FastAPI cannot see what they accept; this module puts the pydantic request models into the document, with the
limits of :mod:`ctxops.engine.limits` as JSON-schema bounds. What the models' validators refuse (``n`` other than
1, penalties, ``logit_bias``, tools, JSON mode, ``echo``, ``suffix``, empty or batched prompts, non-text content
parts, empty stop strings) is stated as schema constraints too, and ``model`` lists the served name, so a body
the document allows is one the server's schema accepts; what only the model can judge (the prompt's length in
tokens, token ids beyond the vocabulary, a chat template's rules) stays a documented 400. Every status a route can
answer is declared with its body: OpenAI's completion objects, vLLM's tokenizer results, and OpenAI's error shape.
Schema-driven tools (schemathesis, client generators) read it at ``GET /openapi.json``.
It knows schemas and routes, not engines.
"""

from __future__ import annotations

import copy
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
# Routes that parse their bodies by hand: the schema is written out in _RESPONSES under this name.
_FREE_BODIES = {"/v1/feedback": "FeedbackRequest"}
_GENERATION_ERRORS = {
    "400": "Invalid request: the message and ``param`` name the field (also ``context_length_exceeded``)",
    "401": "Missing or wrong API key",
    "404": "Unknown model",
    "413": "Body larger than the server's limit",
    "429": "Too many requests in flight; retry after ``Retry-After`` seconds",
    "500": "This request failed inside the server (``request_failed``); others are unaffected",
    "503": "Starting, draining or failed; retry elsewhere or after ``Retry-After`` seconds",
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_TOKEN_ID = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
_STOP = {"type": "string", "minLength": 1}
# What the request models' validators refuse, as JSON schema: {model: {field: schema}}. A field listed here
# replaces the schema pydantic derives from its type (descriptions and defaults are kept).
_VALIDATED: dict[str, dict[str, dict[str, Any]]] = {
    "_sampling": {
        "n": {"type": "integer", "const": 1},
        "presence_penalty": {"type": "number", "const": 0},
        "frequency_penalty": {"type": "number", "const": 0},
        "logit_bias": _nullable({"type": "object", "maxProperties": 0}),
        "stop": {"anyOf": [_STOP, {"type": "array", "items": _STOP}, {"type": "null"}]},
    },
    "ChatCompletionRequest": {
        "tools": _nullable({"type": "array", "maxItems": 0}),
        "response_format": _nullable({"type": "object", "properties": {"type": {"const": "text"}}}),
    },
    "CompletionRequest": {
        "prompt": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": _TOKEN_ID, "minItems": 1},
                {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 1},
                {
                    "type": "array",
                    "items": {"type": "array", "items": _TOKEN_ID, "minItems": 1},
                    "minItems": 1,
                    "maxItems": 1,
                },
            ],
            "description": "Text, or token ids; a list of one prompt is that prompt (batches are refused)",
        },
        "echo": {"type": "boolean", "const": False},
        "best_of": _nullable({"type": "integer", "const": 1}),
        "suffix": _nullable({"type": "string", "maxLength": 0}),
    },
    "ContentPart": {"type": {"type": "string", "const": "text"}},
}
_SAMPLING_MODELS = ("ChatCompletionRequest", "CompletionRequest")
# /tokenize takes exactly one of a text prompt and chat messages.
_ONE_OF_PROMPT_OR_MESSAGES = [
    {"required": ["prompt"], "properties": {"prompt": {"type": "string"}, "messages": {"type": "null"}}},
    {"required": ["messages"], "properties": {"messages": {"type": "array"}, "prompt": {"type": "null"}}},
]

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
_COUNT = {"type": "integer", "minimum": 0}
_USAGE: dict[str, Any] = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        "prompt_tokens": _COUNT,
        "completion_tokens": _COUNT,
        "total_tokens": _COUNT,
        "prompt_tokens_details": {"type": "object", "properties": {"cached_tokens": _COUNT}},
    },
}
_FINISH_REASON = {"type": ["string", "null"], "description": "``stop`` or ``length``"}


def _completion(obj: str, choice: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed response: one choice and the token usage (null only if a gateway's upstream sent none)."""
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": obj},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "minItems": 1, "maxItems": 1, "items": choice},
            "usage": _nullable({"$ref": _REF.format(model="Usage")}),
        },
    }


_RESPONSES: dict[str, dict[str, Any]] = {
    "ErrorResponse": _ERROR_SCHEMA,
    "Usage": _USAGE,
    "ChatCompletion": _completion(
        "chat.completion",
        {
            "type": "object",
            "required": ["index", "message", "finish_reason"],
            "properties": {
                "index": {"const": 0},
                "message": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {"role": {"const": "assistant"}, "content": {"type": ["string", "null"]}},
                },
                "logprobs": {"type": ["object", "null"]},
                "finish_reason": _FINISH_REASON,
            },
        },
    ),
    "Completion": _completion(
        "text_completion",
        {
            "type": "object",
            "required": ["index", "text", "finish_reason"],
            "properties": {
                "index": {"const": 0},
                "text": {"type": "string"},
                "logprobs": {"type": ["object", "null"]},
                "finish_reason": _FINISH_REASON,
            },
        },
    ),
    "TokenizeResponse": {
        "type": "object",
        "required": ["count", "max_model_len", "tokens"],
        "properties": {
            "count": _COUNT,
            "max_model_len": {"type": ["integer", "null"]},
            "tokens": {"type": "array", "items": _COUNT},
            "token_strs": {"type": ["array", "null"], "items": {"type": "string"}},
        },
    },
    "DetokenizeResponse": {
        "type": "object",
        "required": ["prompt"],
        "properties": {"prompt": {"type": "string"}},
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "object", "created", "owned_by"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"const": "model"},
                        "created": {"type": "integer"},
                        "owned_by": {"type": "string"},
                        "root": {"type": ["string", "null"]},
                        "max_model_len": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["ready", "starting", "draining", "failed"]},
            "error": {"type": "string", "description": "with ``failed``: why the engine stopped"},
        },
    },
}


def _chunk(obj: str, choice: dict[str, Any]) -> dict[str, Any]:
    """One streamed chunk: a delta of the one choice, or (last, with ``include_usage``) no choice and the usage."""
    return {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": obj},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "maxItems": 1, "items": choice},
            "usage": _nullable({"$ref": _REF.format(model="Usage")}),
        },
    }


_RESPONSES["ChatCompletionChunk"] = _chunk(
    "chat.completion.chunk",
    {
        "type": "object",
        "required": ["index", "delta"],
        "properties": {
            "index": {"const": 0},
            "delta": {
                "type": "object",
                "properties": {"role": {"const": "assistant"}, "content": {"type": ["string", "null"]}},
            },
            "logprobs": {"type": ["object", "null"]},
            "finish_reason": _FINISH_REASON,
        },
    },
)
_RESPONSES["CompletionChunk"] = _chunk(
    "text_completion",
    {
        "type": "object",
        "required": ["index", "text"],
        "properties": {
            "index": {"const": 0},
            "text": {"type": "string"},
            "logprobs": {"type": ["object", "null"]},
            "finish_reason": _FINISH_REASON,
        },
    },
)
_RESPONSES["FeedbackRequest"] = {
    "type": "object",
    "required": ["id", "score"],
    "additionalProperties": False,
    "properties": {
        "id": {
            "type": "string",
            "pattern": "\\S",
            "description": "The answer's ``id`` (its ``x-request-id``)",
        },
        "score": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "The user's score of the answer",
        },
    },
}
_RESPONSES["Feedback"] = {
    "type": "object",
    "required": ["id", "score", "object"],
    "properties": {"id": {"type": "string"}, "score": {"type": "number"}, "object": {"const": "feedback"}},
}
_CHUNKS = {"/v1/chat/completions": "ChatCompletionChunk", "/v1/completions": "CompletionChunk"}
_OK = {
    "/v1/chat/completions": "ChatCompletion",
    "/v1/completions": "Completion",
    "/tokenize": "TokenizeResponse",
    "/detokenize": "DetokenizeResponse",
    "/v1/models": "ModelList",
    "/v1/feedback": "Feedback",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _event(chunk: str) -> dict[str, Any]:
    """One server-sent event of a stream (OpenAPI 3.1: a sequential media type's ``schema`` is one item)."""
    json_data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"anyOf": [_ref(chunk), _ref("ErrorResponse")]},
        "description": f"A {chunk}, or an error object if the stream fails after its first token",
    }
    done = {"const": "[DONE]", "description": "The last event"}
    return {"type": "object", "required": ["data"], "properties": {"data": {"anyOf": [json_data, done]}}}


def _responses(path: str) -> dict[str, Any]:
    """The statuses a route answers, each with its body shape."""
    error = _ref("ErrorResponse")
    if path in ("/v1/chat/completions", "/v1/completions"):
        ok = {
            "description": "A completion (JSON), or with ``stream`` an event stream of chunks ending in [DONE]",
            "content": {
                "application/json": {"schema": _ref(_OK[path])},
                "text/event-stream": {"schema": _event(_CHUNKS[path])},
            },
        }
        return {"200": ok, **{s: _json(error, d) for s, d in _GENERATION_ERRORS.items()}}
    if path in ("/tokenize", "/detokenize"):
        codes = ("400", "401", "404", "413", "500", "503")
        return {
            "200": _json(_ref(_OK[path]), "The result"),
            **{s: _json(error, _GENERATION_ERRORS[s]) for s in codes},
        }
    if path == "/v1/feedback":
        return {
            "200": _json(_ref("Feedback"), "The score was kept"),
            "400": _json(
                error, "Not a valid feedback body, or the server keeps no request log (start it with --db)"
            ),
            **{s: _json(error, _GENERATION_ERRORS[s]) for s in ("401", "413")},
        }
    if path == "/v1/models":
        return {
            "200": _json(_ref("ModelList"), "The served model"),
            "401": _json(error, _GENERATION_ERRORS["401"]),
        }
    if path == "/health":
        return {
            "200": _json(_ref("Health"), "Ready"),
            "503": _json(_ref("Health"), "Starting, draining or failed"),
        }
    if path == "/metrics":
        text = {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
        return {"200": text, "401": _json(error, _GENERATION_ERRORS["401"])}
    return {"200": {"description": "OK"}}


def _served_models(app: FastAPI) -> list[str]:
    """The names clients may send in ``model`` (what ``GET /v1/models`` lists); empty if the app has no server."""
    server = getattr(app.state, "server", None)
    name = getattr(getattr(server, "backend", None), "model_name", None)
    return [name] if isinstance(name, str) else []


def _tighten(schemas: dict[str, Any], models: list[str]) -> None:
    """Write the validators' refusals and the served model names into the request schemas, in place."""
    for name, schema in schemas.items():
        fields = {**_VALIDATED.get(name, {})}
        if name in _SAMPLING_MODELS:
            fields.update(_VALIDATED["_sampling"])
        properties = schema.get("properties", {})
        for field, constraint in fields.items():
            if field not in properties:
                raise KeyError(f"openapi: {name}.{field} is no longer a field; update _VALIDATED")
            kept = {k: v for k, v in properties[field].items() if k in ("default", "description", "title")}
            properties[field] = {**copy.deepcopy(constraint), **kept}
        if models and "model" in properties:
            names = {"type": "string", "enum": models}
            required = "model" in schema.get("required", [])
            kept = {k: v for k, v in properties["model"].items() if k in ("default", "description", "title")}
            properties["model"] = {**(names if required else _nullable(names)), **kept}
    schemas["TokenizeRequest"]["oneOf"] = copy.deepcopy(_ONE_OF_PROMPT_OR_MESSAGES)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes, with request bodies and responses filled in."""
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(copy.deepcopy(_RESPONSES))
    for model in _BODIES.values():
        schema = model.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    _tighten(schemas, _served_models(app))
    security = _security(doc)
    for path, methods in doc.get("paths", {}).items():
        for method, operation in methods.items():
            operation["responses"] = _responses(path)
            body = _BODIES[path].__name__ if path in _BODIES else _FREE_BODIES.get(path)
            if body is not None and method == "post":
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(body)}},
                }
            if path != "/health":
                operation["security"] = security
    return doc


def _security(doc: dict[str, Any]) -> list[dict[str, list[str]]]:
    """Bearer API keys (only enforced when the server was started with keys)."""
    doc["components"]["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
    return [{"apiKey": []}, {}]  # the empty alternative: a server without keys needs none

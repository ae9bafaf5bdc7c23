"""schemathesis against a real `ctxops serve`: requests generated from its `/openapi.json`, valid and invalid.

Every generated request must get a documented answer: never a 5xx (`not_a_server_error`), only a status the
document declares for its route, that status's content type and body schema; a 200 event stream must be JSON
chunks of the route's chunk schema ending in ``[DONE]``. Cases come from schemathesis' strategies (positive and
negative) through hypothesis, one property per route, so a failure shrinks to a minimal request and prints it as
curl. (schemathesis' ``from_fixture`` cannot run under pytest 9: it sets ``Function._nodeid``, which is gone.)
The default run is CI-sized (~170 requests); the slow one sends ~2,000. `bench/fuzz_api.py` runs every
schemathesis phase, coverage included, at bench size.

Generation is kept cheap: a hook caps `max_tokens` / `max_completion_tokens` at 8 and the server's
`--max-model-len` is 256, so a request without a cap costs at most ~250 tokens of the tiny model.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from serve_helpers import MODEL_NAME, ServerProcess, tiny_args

MAX_TOKENS = 8
KEY = "sk-fuzz"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
ROUTES = {
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /tokenize",
    "POST /detokenize",
    "GET /v1/models",
    "GET /health",
    "GET /metrics",
    "POST /v1/feedback",
}
# schemathesis' default markers less "token": reproductions show max_tokens, stop_token_ids, ...; keys stay hidden
SENSITIVE_MARKERS = ["key", "secret", "password", "passwd", "auth", "session", "credential"]
CHUNK_SCHEMAS = {"/v1/chat/completions": "ChatCompletionChunk", "/v1/completions": "CompletionChunk"}
# one valid streamed request per generation route, run before the generated ones: Hypothesis' draws change with
# the state earlier tests leave in the process (the full suite drew no valid streamed chat request; alone it drew
# two), and the streamed path must be checked on every run
STREAMED_EXAMPLES = {
    "/v1/chat/completions": {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    },
    "/v1/completions": {"model": MODEL_NAME, "prompt": "hi", "max_tokens": 4},
}


def serve(tiny_model_dir, serve_dir, name: str, *extra: str) -> ServerProcess:
    """The tiny model behind `ctxops serve` with a 256-token context, so any generation is cheap."""
    args = tiny_args(tiny_model_dir, "--max-model-len", "256")
    return ServerProcess([*args, *extra], serve_dir, name)


@pytest.fixture(scope="module")
def _servers(tiny_model_dir, serve_dir) -> Iterator[dict[str, ServerProcess]]:
    """The fuzzed server (no keys) and two with a key, metrics behind it or open; started in parallel."""
    servers = {
        # a request log, so /v1/feedback can keep a score (without one it answers 400)
        "fuzz": serve(tiny_model_dir, serve_dir, "fuzz", "--db", str(serve_dir / "fuzz-requests.db")),
        "keyed": serve(tiny_model_dir, serve_dir, "keyed", "--api-key", KEY),
        "open_metrics": serve(
            tiny_model_dir, serve_dir, "open-metrics", "--api-key", KEY, "--no-metrics-auth"
        ),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def fuzz_server(_servers) -> ServerProcess:
    return _servers["fuzz"].wait_ready()


def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    """Cap generation at MAX_TOKENS: an in-range value above it is lowered (invalid values stay invalid)."""
    if isinstance(body, dict):
        for key in ("max_tokens", "max_completion_tokens"):
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
                body[key] = MAX_TOKENS
    return body


@pytest.fixture(scope="module")
def api(fuzz_server) -> schemathesis.BaseSchema:
    """The server's own document, validating with CHECKS only."""
    config = schemathesis.Config.from_dict(
        {
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "request-timeout": 60,
            "max-stream-events": 1000,  # whole streams: an uncapped request streams up to ~250 tokens
            "output": {"sanitization": {"sensitive-markers": SENSITIVE_MARKERS}},
        }
    )
    schema = schemathesis.openapi.from_url(fuzz_server.base + "/openapi.json", config=config)
    schema.hook(map_body)
    return schema


@pytest.fixture(scope="module")
def event_validators(fuzz_server) -> dict[str, jsonschema_rs.Validator]:
    """Validators of one streamed event's JSON (a chunk of the route, or an error), from the served document."""
    components = httpx.get(fuzz_server.base + "/openapi.json").json()["components"]
    out = {}
    for path, chunk in CHUNK_SCHEMAS.items():
        refs = [{"$ref": f"#/components/schemas/{name}"} for name in (chunk, "ErrorResponse")]
        out[path] = jsonschema_rs.validator_for({"anyOf": refs, "components": components})
    return out


def check_stream(path: str, response: Any, validators: dict[str, jsonschema_rs.Validator]) -> None:
    """A 200 event stream: JSON chunks of the route's schema (or one error object last), then [DONE]."""
    events = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events and events[-1] == "[DONE]", events[-3:]
    for i, data in enumerate(events[:-1]):
        item = json.loads(data)
        validators[path].validate(item)
        assert "error" not in item or i == len(events) - 2, "events after an error event"


def fuzz_route(
    operation: Any, validators: dict, examples: int, statuses: Counter[tuple[str, int]], derandomize: bool
) -> None:
    """One route's property: `examples` generated cases, positive and negative, each checked and counted."""
    label = f"{operation.method.upper()} {operation.path}"
    health = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
    explicit = STREAMED_EXAMPLES.get(operation.path)
    pinned = (
        example(case=operation.Case(body=dict(explicit), media_type="application/json"), stream="usage")
        if explicit
        else (lambda test: test)
    )

    @settings(
        max_examples=examples,
        derandomize=derandomize,
        deadline=None,
        database=None,
        suppress_health_check=health,
    )
    @pinned
    @given(
        case=st.one_of([operation.as_strategy(generation_mode=mode) for mode in GenerationMode]),
        stream=st.sampled_from([None, None, "plain", "usage"]),
    )
    def property_(case: schemathesis.Case, stream: str | None) -> None:
        if stream and operation.path in CHUNK_SCHEMAS and isinstance(case.body, dict):
            # schemathesis seldom sets a bool with a default of false; stream half of the requests
            case.body["stream"] = True
            if stream == "usage":
                case.body["stream_options"] = {"include_usage": True}
        response = case.call()
        streamed = response.headers.get("content-type", [""])[0].startswith("text/event-stream")
        statuses[(label + " stream" * streamed, response.status_code)] += 1
        case.validate_response(response)
        if streamed:
            assert not response.stream_cut_short
            check_stream(operation.path, response, validators)

    property_()


def fuzz(
    api: schemathesis.BaseSchema, validators: dict, examples: int, derandomize: bool
) -> Counter[tuple[str, int]]:
    """Every route with `examples` generated cases (5 for routes without a body); statuses by route."""
    statuses: Counter[tuple[str, int]] = Counter()
    for result in api.get_all_operations():
        operation = result.ok()
        fuzz_route(operation, validators, examples if operation.body else 5, statuses, derandomize)
    return statuses


def assert_covered(statuses: Counter[tuple[str, int]]) -> None:
    """Every route was reached (generation streamed too); each route with a body answered (200) and refused (400)."""
    streams = {f"{route} stream" for route in ROUTES if route.endswith("completions")}
    assert {route for route, _ in statuses} == ROUTES | streams
    for route in ROUTES | streams:
        answered = {status for r, status in statuses if r == route}
        assert 200 in answered, (route, answered)
        assert route.startswith("GET") or route in streams or 400 in answered, (route, answered)


def test_fuzz(api, event_validators) -> None:
    """CI-sized and derandomized (the same ~170 requests every run, so CI never flakes on a lucky draw)."""
    statuses = fuzz(api, event_validators, examples=40, derandomize=True)
    assert_covered(statuses)


@pytest.mark.slow
def test_fuzz_deep(api, event_validators) -> None:
    """~2,000 requests, a fresh random draw each run."""
    statuses = fuzz(api, event_validators, examples=500, derandomize=False)
    assert_covered(statuses)


def test_openapi_lists_every_route_with_its_body(fuzz_server, api) -> None:
    api.validate()  # a valid OpenAPI 3.1 document
    doc = httpx.get(fuzz_server.base + "/openapi.json").json()
    routes = {f"{method.upper()} {path}" for path, methods in doc["paths"].items() for method in methods}
    assert routes == ROUTES
    bodies = {"/v1/chat/completions": "ChatCompletionRequest", "/v1/completions": "CompletionRequest",
              "/tokenize": "TokenizeRequest", "/detokenize": "DetokenizeRequest",
              "/v1/feedback": "FeedbackRequest"}  # fmt: skip
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            assert "200" in operation["responses"], (method, path)
            if method == "post":
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{bodies[path]}"}
            else:
                assert "requestBody" not in operation
    schemas = doc["components"]["schemas"]
    chat, completion = (
        schemas["ChatCompletionRequest"]["properties"],
        schemas["CompletionRequest"]["properties"],
    )
    served = [m["id"] for m in httpx.get(fuzz_server.url + "/models").json()["data"]]
    assert chat["model"]["enum"] == completion["model"]["enum"] == served == [MODEL_NAME]
    # the limits of ctxops.engine.limits, and what the validators refuse, are in the document
    assert (chat["temperature"]["minimum"], chat["temperature"]["maximum"]) == (0, 2)
    seed = chat["seed"]["anyOf"][0]
    assert (seed["minimum"], seed["maximum"]) == (-(2**63), 2**63 - 1)
    assert completion["n"]["const"] == 1 and completion["echo"]["const"] is False
    stream = doc["paths"]["/v1/completions"]["post"]["responses"]["200"]["content"]["text/event-stream"][
        "schema"
    ]
    assert "CompletionChunk" in json.dumps(stream)


def test_openapi_and_metrics_need_the_key(_servers) -> None:
    keyed = _servers["keyed"].wait_ready()
    with_key = {"Authorization": f"Bearer {KEY}"}
    for path in ("/openapi.json", "/metrics", "/v1/models"):
        refused = httpx.get(keyed.base + path)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key", path
        assert httpx.get(keyed.base + path, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
        assert httpx.get(keyed.base + path, headers=with_key).status_code == 200, path
    assert httpx.get(keyed.base + "/health").status_code == 200  # load balancers probe without a key
    doc = httpx.get(keyed.base + "/openapi.json", headers=with_key).json()
    assert doc["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer"}


def test_no_metrics_auth_opens_only_metrics(_servers) -> None:
    server = _servers["open_metrics"].wait_ready()
    metrics = httpx.get(server.base + "/metrics")
    assert metrics.status_code == 200 and "ctxops:engine_healthy" in metrics.text
    assert httpx.get(server.base + "/openapi.json").status_code == 401
    assert httpx.get(server.url + "/models").status_code == 401

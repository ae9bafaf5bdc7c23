"""Bench-size schemathesis run against a real `ctxops serve`: thousands of requests generated from /openapi.json.

Runs schemathesis' engine (what `schemathesis run` runs: the coverage phase's boundary and type-confusion cases of
every field, then the fuzzing phase's positive and negative cases) with the checks `not_a_server_error`,
`status_code_conformance`, `content_type_conformance` and `response_schema_conformance`, plus one of ours: each
event of a 200 stream must be a JSON chunk of the route's documented chunk schema, the last one ``[DONE]``.
Prints requests by route and status, the count of responses >= 500 (must be 0), and every failing check with a
curl command that reproduces it; exits 1 if any. Generation is kept cheap: `max_tokens` /
`max_completion_tokens` are capped at 8 and the server runs with `--max-model-len 256`.

    nice python bench/fuzz_api.py [--max-examples 400] [--model DIR | --url http://127.0.0.1:8000] [--out fuzz.json]

The client lowers its own priority once the server is up (on a 2-core machine it would otherwise take the CPU
the server answers with).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import schemathesis
from hypothesis import strategies as st
from schemathesis.engine import Status, events
from server_process import free_port, start_server

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# schemathesis' default markers less "token": reproductions show max_tokens, stop_token_ids, ...; keys stay hidden
SENSITIVE_MARKERS = ["key", "secret", "password", "passwd", "auth", "session", "credential"]
CHUNK_SCHEMAS = {"/v1/chat/completions": "ChatCompletionChunk", "/v1/completions": "CompletionChunk"}
MAX_TOKENS = 8


def start_fuzz_server(model: str, port: int, workdir: Path, name: str) -> subprocess.Popen:
    args = [model, "--served-model-name", name, "--max-model-len", "256", "--kv-cache-memory", "32MiB",
            "--request-log", str(workdir / "fuzz-requests.db")]  # fmt: skip
    return start_server(args, port, workdir)


class Recorder:
    """Every response the run got, by route and status, and the stream events that broke their schema."""

    def __init__(self, components: dict[str, Any], documented: set[str]) -> None:
        self.documented = documented  # "POST /tokenize", ...
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.stream_errors: dict[str, str] = {}  # message -> curl
        self.validators = {
            path: jsonschema_rs.validator_for(
                {
                    "anyOf": [{"$ref": f"#/components/schemas/{n}"} for n in (chunk, "ErrorResponse")],
                    "components": components,
                }  # fmt: skip
            )
            for path, chunk in CHUNK_SCHEMAS.items()
        }

    def map_body(self, context: schemathesis.HookContext, body: Any) -> Any:
        if isinstance(body, dict):
            for key in ("max_tokens", "max_completion_tokens"):
                value = body.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
                    body[key] = MAX_TOKENS
        return body

    def after_call(self, context: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
        streamed = response.headers.get("content-type", [""])[0].startswith("text/event-stream")
        route = f"{case.method.upper()} {case.path}"
        if route not in self.documented:
            route = "(undocumented method)"  # the coverage phase sends PUT, TRACE, ... to every path
        route += " (stream)" if streamed else ""
        self.statuses[(route, response.status_code)] += 1
        if streamed and response.status_code == 200 and not response.stream_cut_short:
            problem = self._stream_problem(case.path, response.text)
            if problem:
                self.stream_errors.setdefault(problem, case.as_curl_command())

    def _stream_problem(self, path: str, text: str) -> str | None:
        data = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
        if not data or data[-1] != "[DONE]":
            return f"{path}: the stream does not end with [DONE]"
        for i, item in enumerate(data[:-1]):
            try:
                chunk = json.loads(item)
                self.validators[path].validate(chunk)
            except (ValueError, jsonschema_rs.ValidationError) as exc:
                return f"{path}: event {i} is not a valid chunk: {str(exc).splitlines()[0]}"
            if "error" in chunk and i != len(data) - 2:
                return f"{path}: events after an error event"
        return None


def run(base: str, max_examples: int, workers: int, headers: dict[str, str]) -> dict[str, Any]:
    config = schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": max_examples},
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "request-timeout": 60,
            "max-stream-events": 1000,  # whole streams: an uncapped request streams up to ~250 tokens
            "output": {"sanitization": {"sensitive-markers": SENSITIVE_MARKERS}},
            "workers": workers,
            "headers": headers,
        }
    )
    schema = schemathesis.openapi.from_url(base + "/openapi.json", config=config, headers=headers)
    paths = schema.raw_schema["paths"]
    documented = {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}
    recorder = Recorder(schema.raw_schema["components"], documented)

    @schema.hook
    def map_body(context: schemathesis.HookContext, body: Any) -> Any:
        return recorder.map_body(context, body)

    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy:
        """Stream half of the generation requests (schemathesis seldom sets a bool whose default is false)."""
        if (
            context.operation is None
            or context.operation.path not in CHUNK_SCHEMAS
            or not isinstance(body, dict)
        ):
            return st.just(body)
        if not isinstance(body.get("stream", False), bool) or "stream_options" in body:
            return st.just(body)
        usage = {"include_usage": True}
        return st.sampled_from(
            [body, {**body, "stream": True}, {**body, "stream": True, "stream_options": usage}]
        )

    @schema.hook
    def after_call(context: schemathesis.HookContext, case: schemathesis.Case, response: Any) -> None:
        recorder.after_call(context, case, response)

    failures: dict[tuple[str, str], str] = {}  # (check, title) -> curl
    errors: list[str] = []
    start = time.perf_counter()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        key = (check.name, f"{failure.operation}: {failure.title}: {failure.message}"[:300])
                        failures.setdefault(key, check.failure_info.code_sample)
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.title}: {event.info.message}"[:300])
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
    wall = time.perf_counter() - start
    for message, curl in recorder.stream_errors.items():
        failures[("chunk_schema", message)] = curl
    return {"statuses": recorder.statuses, "failures": failures, "errors": errors, "wall_s": wall}


def table(statuses: Counter[tuple[str, int]]) -> str:
    codes = sorted({status for _, status in statuses})
    routes = sorted({route for route, _ in statuses})
    lines = ["| route | " + " | ".join(str(c) for c in codes) + " | total |", "|---" * (len(codes) + 2) + "|"]
    for route in routes:
        counts = [statuses.get((route, c), 0) for c in codes]
        lines.append(f"| {route} | " + " | ".join(str(n or "") for n in counts) + f" | {sum(counts)} |")
    totals = [sum(n for (_, c), n in statuses.items() if c == code) for code in codes]
    lines.append("| **all** | " + " | ".join(str(n) for n in totals) + f" | {sum(totals)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="model directory or builtin (default: a random tiny Llama in a temp dir)"
    )
    parser.add_argument("--url", help="fuzz a running server at this base URL instead of starting one")
    parser.add_argument("--api-key", help="key for a server started with --api-key")
    parser.add_argument("--max-examples", type=int, default=400, help="fuzzing cases per route with a body")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    server = None
    if args.url:
        base = args.url.rstrip("/")
    else:
        workdir = Path(tempfile.mkdtemp(prefix="ctxops-fuzz-"))
        model = args.model
        if model is None:
            from ctxops.models.random_model import write_random_model

            model = str(write_random_model(workdir / "model"))
        port = free_port()
        server = start_fuzz_server(model, port, workdir, "fuzz")
        base = f"http://127.0.0.1:{port}"
    os.nice(10)  # the server keeps its priority; the generator must not take its CPU
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        result = run(base, args.max_examples, args.workers, headers)
        healthy = httpx.get(base + "/health", timeout=5).status_code == 200
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    statuses = result["statuses"]
    total = sum(statuses.values())
    server_errors = sum(n for (_, status), n in statuses.items() if status >= 500)
    print(f"## schemathesis against {base}: {total} requests in {result['wall_s']:.0f} s\n")
    print(table(statuses))
    print(f"\nresponses >= 500: {server_errors}; /health after the run: {'200' if healthy else 'not 200'}")
    print(f"failing checks: {len(result['failures'])}; engine errors: {len(result['errors'])}")
    for (check, message), curl in result["failures"].items():
        print(f"\n- {check}: {message}\n  {curl}")
    for error in result["errors"]:
        print(f"\n- error: {error}")
    if args.out:
        report = {
            "base": base, "requests": total, "wall_s": result["wall_s"], "server_errors": server_errors,
            "healthy_after": healthy,
            "statuses": [{"route": r, "status": s, "count": n} for (r, s), n in sorted(statuses.items())],
            "failures": [{"check": c, "message": m, "curl": curl} for (c, m), curl in result["failures"].items()],
            "errors": result["errors"],
        }  # fmt: skip
        Path(args.out).write_text(json.dumps(report, indent=2))
    sys.exit(1 if server_errors or result["failures"] or result["errors"] or not healthy else 0)


if __name__ == "__main__":
    main()

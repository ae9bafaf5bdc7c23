"""The store's tables, as SQLAlchemy Core metadata (the migrations build the same tables, step by step).

``requests`` holds one row per served request with the columns of the request log (schema version 2).
``eval_runs`` holds the summary of eval and canary runs (the effective context length drift reads comes from here),
``incidents`` the open / acknowledged / resolved problems the monitor found, and ``outbox`` the notifications
still to deliver. ``model_versions`` is the registry, ``rollouts`` the state of progressive rollouts and
``feedback`` the users' scores of answers (by request id). This module knows columns, not queries.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

requests = sa.Table(
    "requests",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),  # unix time the request arrived, seconds
    sa.Column("endpoint", sa.Text, nullable=False),  # chat.completions | completions | tokenize | detokenize
    sa.Column("model", sa.Text),  # the model name the client asked for
    sa.Column("key_id", sa.Text),  # salted hash of the API key (never the key)
    sa.Column("user", sa.Text),  # the OpenAI `user` field
    sa.Column("upstream", sa.Text),  # host:port in gateway mode, NULL for the embedded engine
    sa.Column("stream", sa.Integer),  # 1 when streamed
    sa.Column("status", sa.Integer, nullable=False),  # HTTP status sent
    sa.Column("error_code", sa.Text),  # OpenAI error code when status >= 400
    sa.Column("prompt_tokens", sa.Integer),  # tokenize: tokens counted; detokenize: tokens decoded
    sa.Column("cached_tokens", sa.Integer),  # prompt tokens served from the prefix cache
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("max_tokens", sa.Integer),  # requested completion limit
    sa.Column("queue_time_s", sa.Double),  # arrival -> first scheduled
    sa.Column("ttft_s", sa.Double),  # arrival -> first token
    sa.Column("e2e_s", sa.Double),  # arrival -> last byte
    sa.Column("finish_reason", sa.Text),  # stop | length | abort | error
    # NULL: the engine's exact counts; upstream: the upstream's usage; counted: the gateway counted relayed chunks
    sa.Column("usage_source", sa.Text),
    sa.Column("prompt", sa.Text),  # only with --log-prompts
    sa.Column("output", sa.Text),  # only with --log-prompts
    sa.Column("version", sa.Text),  # the registry version of the arm that served it (gateway with routes)
    sa.Column("arm", sa.Text),  # the routes file's arm that served it
    sa.Column("route_reason", sa.Text),  # why it went there: weighted | length | fallback:<why> | ensemble
    sa.Column("guard_action", sa.Text),  # the guard's strongest action: log | redact | block; NULL: none
    sa.Column("guard_rules", sa.Text),  # rules that matched, "side:rule" comma-separated: input:email
    sa.Index("requests_created_at", "created_at"),
    sa.Index("requests_model_created_at", "model", "created_at"),
)
REQUEST_COLUMNS = tuple(c.name for c in requests.columns)

eval_runs = sa.Table(
    "eval_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),  # the run directory, or canary:<name>:<n>
    sa.Column("kind", sa.Text, nullable=False),  # eval | canary
    sa.Column("model", sa.Text, nullable=False),  # served model name, or the local model as given
    sa.Column("created_at", sa.Double, nullable=False),  # unix seconds the run finished (or was last updated)
    sa.Column("effective_length", sa.Integer),  # 95%-lower-bound effective context length, tokens
    sa.Column("report_path", sa.Text),  # report.html, when there is one
    sa.Column("summary", sa.JSON, nullable=False),  # summary.json (eval) or the canary's scored samples
    sa.Index("eval_runs_model_created_at", "model", "created_at"),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedup_key", sa.Text, nullable=False),  # one open incident per key, e.g. drift:ttft_s:model
    sa.Column("rule", sa.Text, nullable=False),  # drift | slo_burn | canary_regression | error_spike
    sa.Column("state", sa.Text, nullable=False),  # open | acknowledged | resolved
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("opened_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("resolved_at", sa.Double),
    sa.Index("incidents_dedup_key_state", "dedup_key", "state"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),  # sent as Idempotency-Key
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id")),
    sa.Column("url", sa.Text, nullable=False),  # webhook receiver
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.Double, nullable=False),  # unix seconds; backoff moves it forward
    sa.Column("delivered_at", sa.Double),  # NULL until the receiver answered 2xx
    sa.Column("last_error", sa.Text),
    sa.Index("outbox_pending", "delivered_at", "next_attempt_at"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # the model's name, e.g. the served name
    sa.Column("version", sa.Text, primary_key=True),
    sa.Column("created_at", sa.Double, nullable=False),  # unix seconds it was registered
    sa.Column("source", sa.Text, nullable=False),  # path | endpoint
    sa.Column("location", sa.Text, nullable=False),  # resolved model directory, or the endpoint's base URL
    sa.Column("served_model_name", sa.Text),  # endpoint versions: the model id the endpoint serves
    sa.Column("content_hash", sa.Text),  # sha256 over the directory's files, sorted by relative path
    sa.Column("tokenizer_hash", sa.Text),  # sha256 of tokenizer.json + tokenizer_config.json
    sa.Column("config", sa.JSON, nullable=False),  # summary: architecture, layers, heads, context
    sa.Column("settings", sa.JSON, nullable=False),  # engine settings, e.g. {"kv_cache_dtype": "int4"}
    sa.Column("notes", sa.Text),
)

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),  # the rollout config's name
    sa.Column("state", sa.Text, nullable=False),  # running | promoted | rolled_back
    sa.Column("step", sa.Integer, nullable=False),  # index of the step in progress
    sa.Column("config", sa.JSON, nullable=False),  # the rollout config it runs
    sa.Column("history", sa.JSON, nullable=False),  # one entry per finished step: weight, verdict, reasons
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("request_id", sa.Text, primary_key=True),  # the answer's id (x-request-id)
    sa.Column("score", sa.Double, nullable=False),  # the user's score in [0, 1]
    sa.Column("created_at", sa.Double, nullable=False),
)

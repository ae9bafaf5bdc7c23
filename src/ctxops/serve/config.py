"""How the server runs: one frozen dataclass, validated once; ``ctxops serve`` builds its flags from it.

The engine's own settings live in :class:`ctxops.engine.config.EngineConfig`; this object holds only what the HTTP
layer decides (address, keys, limits, logging, upstreams for gateway mode). It knows settings, not sockets.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ctxops.engine.config import parse_bytes
from ctxops.serve.guard_config import GuardConfig

_UPSTREAM_OPTIONS = {
    "weight": "weight=W",
    "model": "model=NAME",
    "key_env": "key_env=VAR",
    "max_concurrency": "max_concurrency=N",
}


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    """An OpenAI-compatible server the gateway forwards to.

    Written ``URL[,weight=W][,model=NAME][,key_env=VAR][,max_concurrency=N]``. ``key_env`` names the environment
    variable that holds the key the gateway sends upstream (``Authorization: Bearer``): the key itself never
    appears on a command line, in a config or in a log.
    """

    url: str  # base URL including /v1, e.g. http://10.0.0.5:8000/v1
    weight: float = 1.0  # share of new users routed here, relative to the other upstreams
    model: str | None = None  # the upstream's model id (default: the first one its /v1/models lists)
    key_env: str | None = None  # environment variable holding this upstream's API key
    max_concurrency: int = (
        64  # requests forwarded here at once; beyond it a request goes to the next upstream
    )

    def __post_init__(self) -> None:
        parsed = urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"upstream URL must look like http://host:port/v1, got {self.url!r}")
        if not self.weight > 0:
            raise ValueError(f"upstream weight must be positive, got {self.weight} for {self.url}")
        if self.max_concurrency < 1:
            raise ValueError(
                f"upstream max_concurrency must be >= 1, got {self.max_concurrency} for {self.url}"
            )
        if self.key_env is not None and not os.environ.get(self.key_env):
            raise ValueError(
                f"upstream {self.url}: key_env={self.key_env} but that environment variable is not set "
                f"(export {self.key_env}=<the upstream's API key>)"
            )

    @classmethod
    def parse(cls, text: str) -> UpstreamSpec:
        """``http://h:8001/v1,weight=3,model=llama-v2`` -> UpstreamSpec (a URL without a path gets ``/v1``)."""
        url, *options = [part.strip() for part in text.split(",")]
        kwargs: dict[str, Any] = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in _UPSTREAM_OPTIONS:
                raise ValueError(
                    f"upstream option {option!r} is not one of {', '.join(_UPSTREAM_OPTIONS.values())} "
                    f"(in {text!r})"
                )
            try:
                kwargs[key] = {"weight": float, "max_concurrency": int}.get(key, str)(value)
            except ValueError as exc:
                raise ValueError(f"upstream {key} must be a number, got {value!r} (in {text!r})") from exc
        if urlparse(url).path in ("", "/"):
            url = url.rstrip("/") + "/v1"
        return cls(url.rstrip("/"), **kwargs)

    @property
    def api_key(self) -> str | None:
        """The key to send upstream, read from ``key_env`` when asked (never stored in the spec)."""
        return os.environ.get(self.key_env) if self.key_env else None

    @property
    def name(self) -> str:
        """host:port, used in metrics labels, logs and the ``x-ctxops-upstream`` header."""
        return urlparse(self.url).netloc


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the HTTP server does in front of a backend (the embedded engine or upstreams)."""

    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
    port: int = _opt(8000, "TCP port to listen on")
    served_model_name: str | None = _opt(None, "model name clients send (default: MODEL as given)")
    api_keys: tuple[str, ...] = ()  # empty = no authentication
    max_queue: int = _opt(256, "requests allowed to wait beyond those running; more get 429")
    max_body_size: int = _opt(
        32 * 2**20, "largest request body, e.g. 32MiB; larger gets 413", parse=parse_bytes
    )
    drain_timeout: float = _opt(30.0, "seconds in-flight requests may take to finish after SIGTERM")
    request_log: str | None = _opt(
        "ctxops-requests.db",
        "the per-request log: a SQLite file or postgresql:// URL ('' = no log; --db and CTXOPS_DB set it too)",
    )
    log_prompts: bool = _opt(
        False, "store prompts and outputs in the request log (off: counts and timings only)"
    )
    metrics_auth: bool = _opt(
        True,
        "with API keys, /metrics needs one too (it shows traffic and, as a gateway, upstream hosts); "
        "--no-metrics-auth opens it to a scraper without credentials",
    )
    upstreams: tuple[UpstreamSpec, ...] = ()  # non-empty = gateway mode
    upstream_timeout: float = _opt(600.0, "seconds to wait for an upstream response before trying another")
    guard: GuardConfig | None = None  # --guard FILE: injection and personal-data rules on input and output
    routes_file: str | None = None  # --routes FILE: arms, versions, policy (gateway; SIGHUP rereads it)
    admin_key: str | None = None  # the key of /admin/routes; never one of api_keys

    def __post_init__(self) -> None:
        if isinstance(self.max_body_size, str):
            object.__setattr__(self, "max_body_size", parse_bytes(self.max_body_size))
        if self.request_log == "":
            object.__setattr__(self, "request_log", None)
        object.__setattr__(self, "api_keys", tuple(self.api_keys))
        object.__setattr__(self, "upstreams", tuple(self.upstreams))
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.max_body_size <= 0:
            raise ValueError(f"max_body_size must be positive, got {self.max_body_size}")
        if not (math.isfinite(self.drain_timeout) and math.isfinite(self.upstream_timeout)):
            raise ValueError("drain_timeout and upstream_timeout must be finite numbers of seconds")
        if self.drain_timeout < 0 or self.upstream_timeout <= 0:
            raise ValueError("drain_timeout must be >= 0 and upstream_timeout > 0 (seconds)")
        if any(not key or key != key.strip() for key in self.api_keys):
            raise ValueError("API keys must be non-empty and carry no surrounding whitespace")
        if self.admin_key is not None and (not self.admin_key.strip() or self.admin_key in self.api_keys):
            raise ValueError("the admin key must be non-blank and differ from every user API key")
        if self.served_model_name is not None and not self.served_model_name.strip():
            raise ValueError("served_model_name must not be blank")

    @property
    def is_gateway(self) -> bool:
        """True when requests go to upstream servers rather than the embedded engine."""
        return bool(self.upstreams)


def read_keys_file(path: str | Path) -> list[str]:
    """API keys, one a line; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the API keys file ({exc.strerror})") from exc
    keys = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise ValueError(f"{path}: the API keys file holds no keys")
    return keys

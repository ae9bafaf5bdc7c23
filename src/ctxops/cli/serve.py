"""``ctxops serve``: an OpenAI-compatible server for a local model, or a gateway in front of upstream servers."""

from __future__ import annotations

import click

from ctxops.cli.options import build, dataclass_options, engine_options
from ctxops.engine.config import EngineConfig
from ctxops.models.config import ModelConfig, ModelConfigError
from ctxops.serve.config import ServerConfig, UpstreamSpec, read_keys_file
from ctxops.serve.guard_config import GuardConfig, GuardConfigError

SERVER_FLAGS = (
    "host", "port", "served_model_name", "max_queue", "max_body_size", "drain_timeout", "request_log",
    "log_prompts", "metrics_auth", "upstream_timeout",
)  # fmt: skip
# with slots=True the class attribute is a descriptor, so read the default from the field
_DEFAULT_MODEL = EngineConfig.default("model")


@click.command()
@click.argument("model", required=False)
@click.option(
    "--api-key", "api_keys", multiple=True, envvar="CTXOPS_API_KEY",
    help="require this key (repeatable; or set CTXOPS_API_KEY, space-separated)",
)  # fmt: skip
@click.option("--api-key-file", type=click.Path(dir_okay=False), help="file of keys to accept, one per line")
@click.option(
    "--upstream", "upstreams", multiple=True, metavar="URL[,weight=W][,model=NAME][,key_env=VAR][,max_concurrency=N]",
    help="gateway mode: forward to this OpenAI-compatible server (repeatable); key_env names the environment "
    "variable holding its API key; max_concurrency (default 64) caps requests forwarded to it at once",
)  # fmt: skip
@click.option(
    "--routes",
    "routes_file",
    type=click.Path(dir_okay=False),
    help="gateway: routes TOML (arms with upstream, version, weight, limits; policy weighted | length | fallback "
    "| ensemble); replaces --upstream; SIGHUP or PUT /admin/routes reloads",
)
@click.option(
    "--admin-key",
    envvar="CTXOPS_ADMIN_KEY",
    default=None,
    help="the key of GET/PUT /admin/routes (or CTXOPS_ADMIN_KEY); must differ from every --api-key",
)
@click.option(
    "--db", envvar="CTXOPS_DB", default=None,
    help="the store the request log goes to: a SQLite file or postgresql:// URL (overrides --request-log)",
)  # fmt: skip
@click.option(
    "--guard", "guard_file", type=click.Path(dir_okay=False),
    help="guard TOML file: injection and personal-data rules (log, redact or block) on requests and answers",
)  # fmt: skip
@click.option(
    "--dashboard", is_flag=True,
    help="also serve the monitoring dashboard at /dashboard over the request log (API keys guard it: open "
    "/dashboard?key=KEY once in a browser)",
)  # fmt: skip
@click.option(
    "--slo",
    "slo_file",
    type=click.Path(dir_okay=False),
    help="with --dashboard: an SLO file whose burn to show",
)
@click.option(
    "--dashboard-refresh", default=30, show_default=True, type=click.IntRange(1),
    help="with --dashboard: seconds between the page's reloads",
)  # fmt: skip
@dataclass_options(ServerConfig, include=SERVER_FLAGS)
@engine_options
def serve(
    model: str | None,
    api_keys: tuple[str, ...],
    api_key_file: str | None,
    upstreams: tuple[str, ...],
    routes_file: str | None,
    admin_key: str | None,
    db: str | None,
    guard_file: str | None,
    dashboard: bool,
    slo_file: str | None,
    dashboard_refresh: int,
    **options,
) -> None:
    """Serve MODEL (a local Hugging Face directory or `builtin`) over OpenAI's HTTP API.

    Example: ctxops serve ./my-model --port 8000 --api-key sk-local

    With --upstream, serve as a gateway instead: requests are forwarded (by weight, sticky per user or key) to the
    given servers, with this server's auth, limits, metrics and request log.
    """
    from ctxops.serve.server import run

    keys = list(api_keys) + (_read_keys(api_key_file) if api_key_file else [])
    try:
        specs = tuple(UpstreamSpec.parse(u) for u in upstreams)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--upstream") from exc
    if routes_file and specs:
        raise click.UsageError("give --routes or --upstream, not both: the routes file names the upstreams")
    if (specs or routes_file) and not options.get("served_model_name") and model:
        options["served_model_name"] = model  # in gateway mode MODEL is just the name clients use
    if db is not None:
        options["request_log"] = db
    guard = _read_guard(guard_file) if guard_file else None
    config = build(ServerConfig, {**options, "api_keys": tuple(keys), "upstreams": specs, "guard": guard,
                                  "routes_file": routes_file, "admin_key": admin_key})  # fmt: skip
    if config.request_log:
        _check_store(config.request_log)
    if (slo_file or dashboard_refresh != 30) and not dashboard:
        raise click.UsageError("--slo and --dashboard-refresh only apply with --dashboard")
    pages = _dashboard(config, slo_file, dashboard_refresh) if dashboard else None
    if routes_file:
        backend = _routed_gateway(config)
    else:
        backend = _gateway(config) if specs else _embedded(model or _DEFAULT_MODEL, config, options)
    raise SystemExit(run(config, backend, pages))


def _check_store(db: str) -> None:
    """Open (and migrate) the request log's store before the port is bound: a bad --db is one error line."""
    from ctxops.store import StoreError, open_store

    try:
        open_store(db).close()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _dashboard(config: ServerConfig, slo_file: str | None, refresh_s: int):
    """The dashboard's pages over the request log's store, reading this server's own gauges over loopback."""
    import functools

    from ctxops.monitor.dashboard import dashboard_routes
    from ctxops.monitor.server_status import server_status
    from ctxops.monitor.slo_config import SLOFileError, load_slo
    from ctxops.serve.app import Pages
    from ctxops.store import open_store

    if not config.request_log:
        raise click.UsageError("--dashboard reads the request log: give --db (or --request-log), not ''")
    try:
        slo = load_slo(slo_file) if slo_file else None
    except SLOFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--slo") from exc
    # the dashboard scrapes /metrics like any client: a wildcard address is reached on loopback
    host = "127.0.0.1" if config.host in ("0.0.0.0", "", "localhost") else config.host
    host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
    key = config.api_keys[0] if config.api_keys and config.metrics_auth else None
    status = functools.partial(server_status, f"http://{host}:{config.port}", key)
    routes = dashboard_routes(open_store(config.request_log), slo, refresh_s, status)
    return Pages("/dashboard", routes)


def _read_guard(path: str) -> GuardConfig:
    try:
        return GuardConfig.from_file(path)
    except GuardConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--guard") from exc


def _read_keys(path: str) -> list[str]:
    try:
        return read_keys_file(path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api-key-file") from exc


def _embedded(model: str, config: ServerConfig, options: dict):
    from ctxops.models.loader import resolve_model_path
    from ctxops.serve.backends.embedded import EmbeddedBackend

    engine_config = build(EngineConfig, {**options, "model": model})
    try:  # fail before binding the port on the common mistakes (no such directory, unsupported model)
        ModelConfig.from_path(resolve_model_path(model)).check_engine_support(engine_config.max_model_len)
    except (ModelConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    return EmbeddedBackend(engine_config, config.served_model_name)


def _routed_gateway(config: ServerConfig):
    from ctxops.rollout.registry import effective_length_lookup
    from ctxops.serve.backends.upstream import UpstreamBackend
    from ctxops.serve.router import Router
    from ctxops.serve.routes import Routes, RoutesError

    assert config.routes_file is not None
    name = config.served_model_name
    if name is None:
        raise click.UsageError("with --routes give the served model name: ctxops serve NAME --routes FILE")
    try:
        routes = Routes.from_file(config.routes_file, name)
    except RoutesError as exc:
        raise click.BadParameter(str(exc), param_hint="--routes") from exc
    lookup = effective_length_lookup(config.request_log) if config.request_log else None
    return UpstreamBackend((), name, config.upstream_timeout, router=Router(routes, name, lookup))


def _gateway(config: ServerConfig):
    from ctxops.serve.backends.upstream import UpstreamBackend, discover_model

    name = config.served_model_name
    if name is None:
        try:
            name = discover_model(config.upstreams[0])
        except Exception as exc:
            raise click.UsageError(
                f"cannot ask {config.upstreams[0].url} for its model name ({exc}); give --served-model-name"
            ) from exc
    return UpstreamBackend(config.upstreams, name, config.upstream_timeout)

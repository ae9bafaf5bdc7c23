"""``ctxops monitor ui``: serve the dashboard over the store at http://HOST:PORT/dashboard."""

from __future__ import annotations

import functools

import click

from ctxops.cli.monitor import db_option, open_db


@click.command()
@db_option
@click.option("--slo", "slo_file", default=None, type=click.Path(dir_okay=False), help="an SLO file to show")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535), help="TCP port")
@click.option(
    "--refresh", default=30, show_default=True, type=click.IntRange(1), help="seconds between reloads"
)
@click.option(
    "--server", default=None, help="a ctxops server (e.g. http://127.0.0.1:8000) whose KV cache use to show"
)
@click.option(
    "--api-key", envvar="CTXOPS_API_KEY", default=None, help="the server's API key, for its /metrics"
)
def ui(
    db: str | None,
    slo_file: str | None,
    host: str,
    port: int,
    refresh: int,
    server: str | None,
    api_key: str | None,
) -> None:
    """Serve the dashboard: traffic, KV cache use, latency by prompt length, drift, SLOs, canaries, incidents.

    Example: ctxops monitor ui --db ctxops-requests.db --slo slo.toml  (then open http://127.0.0.1:8050/dashboard)
    """
    import uvicorn

    from ctxops.monitor.dashboard import build_dashboard
    from ctxops.monitor.server_status import server_status
    from ctxops.monitor.slo_config import SLOFileError, load_slo

    try:
        slo = load_slo(slo_file) if slo_file else None
    except SLOFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--slo") from exc
    with open_db(db) as store:
        click.echo(f"dashboard at http://{host}:{port}/dashboard over {store.url}")
        status = functools.partial(server_status, server, api_key) if server else None
        app = build_dashboard(store, slo, refresh, status)
        uvicorn.run(app, host=host, port=port, log_level="warning")

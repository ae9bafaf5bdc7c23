"""``ctxops registry add | list | show | diff``: model versions in the store, and what changed between two."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from ctxops.cli.main import LazyGroup
from ctxops.cli.monitor import db_option, open_db


def _eval_run_option(func: Any) -> Any:
    return click.option(
        "--eval-run", "eval_runs", multiple=True, type=click.Path(file_okay=False, exists=True),
        help="an eval run directory to record in the store first (repeatable); it links to the version its "
        "target matches",
    )(func)  # fmt: skip


def _import_runs(store: Any, run_dirs: tuple[str, ...]) -> None:
    from ctxops.store import StoreError
    from ctxops.store.eval_runs import import_run_dir

    try:
        for run_dir in run_dirs:
            import_run_dir(store, run_dir)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def _settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE (e.g. kv_cache_dtype=int4)", param_hint="--setting"
            )
        try:
            out[key.strip()] = json.loads(value)  # numbers and booleans keep their type
        except ValueError:
            out[key.strip()] = value
    return out


@click.group(cls=LazyGroup)
def registry() -> None:
    """Model versions: what is deployed, its content hash, settings and eval runs."""


@registry.command()
@db_option
@click.argument("name")
@click.option("--version", "version", required=True, help="the version label, e.g. v2 or 2026-12-02")
@click.option("--path", type=click.Path(file_okay=False), help="the model directory (or builtin) to hash")
@click.option("--endpoint", help="an OpenAI-compatible base URL serving this version, e.g. http://h:8000/v1")
@click.option("--model-name", help="with --endpoint: the model id that endpoint serves")
@click.option(
    "--setting", "settings", multiple=True, metavar="KEY=VALUE",
    help="an engine setting of this version (repeatable), e.g. kv_cache_dtype=int4 or max_model_len=8192",
)  # fmt: skip
@click.option("--notes", help="free text kept with the version")
@_eval_run_option
def add(db: str | None, name: str, version: str, path: str | None, endpoint: str | None,
        model_name: str | None, settings: tuple[str, ...], notes: str | None, eval_runs: tuple[str, ...]) -> None:  # fmt: skip
    """Register version --version of NAME from a model directory (--path) or an endpoint (--endpoint)."""
    from ctxops.rollout.registry import register
    from ctxops.store import StoreError

    with open_db(db, create=True) as store:
        try:
            row = register(store, name, version, path=path, endpoint=endpoint, served_model_name=model_name,
                           settings=_settings(settings), notes=notes)  # fmt: skip
            _import_runs(store, eval_runs)
        except (ValueError, StoreError) as exc:
            raise click.ClickException(str(exc)) from exc
    digest = (row["content_hash"] or "")[:16] or row["location"]
    click.echo(f"registered {name} {version}: {row['source']} {digest}")


@registry.command(name="list")
@db_option
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def list_command(db: str | None, name: str | None, as_json: bool) -> None:
    """List registered versions (of NAME only, when given)."""
    from ctxops.store.registry import list_versions

    with open_db(db) as store:
        rows = list_versions(store, name)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no versions registered" + (f" for {name}" if name else ""))
    for r in rows:
        when = datetime.fromtimestamp(r["created_at"], UTC).isoformat(timespec="seconds")
        ident = (r["content_hash"] or "")[:12] or r["location"]
        settings = " ".join(f"{k}={v}" for k, v in r["settings"].items())
        click.echo(f"{r['name']:<20} {r['version']:<12} {when}  {r['source']:<8} {ident}  {settings}")


@registry.command()
@db_option
@click.argument("name")
@click.option("--version", "version", help="the version to show (default: the newest registered)")
@_eval_run_option
def show(db: str | None, name: str, version: str | None, eval_runs: tuple[str, ...]) -> None:
    """Show one version of NAME as JSON, with the eval runs made against it."""
    from ctxops.rollout.registry import linked_runs
    from ctxops.store.registry import get_version

    with open_db(db) as store:
        _import_runs(store, eval_runs)
        row = get_version(store, name, version)
        if row is None:
            raise click.ClickException(
                f"no version {version or '(any)'} of {name}: see `ctxops registry list`"
            )
        runs = linked_runs(store, row)
    row["eval_runs"] = [{k: r[k] for k in ("run_id", "kind", "created_at", "effective_length")} for r in runs]
    click.echo(json.dumps(row, indent=2))


@registry.command(name="diff")
@db_option
@click.argument("name")
@click.argument("v1")
@click.argument("v2")
@_eval_run_option
def diff_command(db: str | None, name: str, v1: str, v2: str, eval_runs: tuple[str, ...]) -> None:
    """What differs between versions V1 and V2 of NAME: config, settings, evals (with the paired test)."""
    from ctxops.rollout.registry import diff
    from ctxops.store.registry import get_version

    with open_db(db) as store:
        _import_runs(store, eval_runs)
        rows = [get_version(store, name, v) for v in (v1, v2)]
        missing = [v for v, r in zip((v1, v2), rows, strict=True) if r is None]
        if missing:
            raise click.ClickException(
                f"{name} has no version {', '.join(missing)}: see `ctxops registry list`"
            )
        click.echo(json.dumps(diff(store, rows[0], rows[1]), indent=2))  # type: ignore[arg-type]

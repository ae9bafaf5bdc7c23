"""``ctxops rollout run --config rollout.toml``: drive a progressive rollout to promotion or rollback."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ctxops.cli.monitor import db_option, open_db


@click.command()
@db_option
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="rollout TOML: gateway, model, baseline and candidate arms, steps, canary, analysis")  # fmt: skip
@click.option("--out", default="rollout-runs", show_default=True, type=click.Path(file_okay=False),
              help="where each step's canary eval directories go")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="print the final state as JSON")
def run(db: str | None, config_path: str, out: str, as_json: bool) -> None:
    """Step the candidate's share of traffic up (e.g. 5 -> 25 -> 50 -> 100%), judging each step.

    Each step: set the weights through the gateway's admin API, run the same-seed canary on both arms, analyze
    the step's traffic until promote (then the next step) or rollback (all traffic back to the baseline, an
    incident opened). State is kept in the store: rerun the same command after a crash to resume. Exit status 1
    after a rollback.

    Example: CTXOPS_ADMIN_KEY=... ctxops rollout run --db ctxops.db --config rollout.toml
    """
    from ctxops.rollout.driver import RolloutDriver, RolloutState
    from ctxops.rollout.gateway_admin import GatewayAdmin, GatewayError
    from ctxops.rollout.rollout_config import RolloutConfig
    from ctxops.store import StoreError

    try:
        config = RolloutConfig.from_file(config_path)
        admin = GatewayAdmin(config.gateway, config.admin_key)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from exc
    with open_db(db, create=True) as store:
        try:
            state = RolloutDriver(store, config, admin, Path(out), log=click.echo).run()
        except (GatewayError, StoreError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(state, indent=2, default=str))
    if state["state"] == RolloutState.ROLLED_BACK:
        raise SystemExit(1)

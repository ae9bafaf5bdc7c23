"""The ``ctxops`` command group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from ctxops import __version__
from ctxops.cli.generate import generate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ctxops")
def cli() -> None:
    """Plan, serve, evaluate and compress long-context language models."""


cli.add_command(generate)

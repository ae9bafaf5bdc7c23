"""The ``ctxops`` command group; each subcommand lives in its own module.

Subcommands are imported on first use (:class:`LazyGroup`), so ``ctxops plan`` never loads the engine or torch.
"""

from __future__ import annotations

import importlib

import click

from ctxops import __version__


class LazyGroup(click.Group):
    """A click group whose ``lazy_subcommands`` ({name: "module:attribute"}) are imported when first invoked."""

    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name not in self.commands:
            module, attribute = self.lazy_subcommands[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    lazy_subcommands={
        "compare": "ctxops.cli.compare:compare",
        "compress": "ctxops.cli.compress:compress",
        "data": "ctxops.cli.data:data",
        "eval": "ctxops.cli.eval:eval_command",
        "generate": "ctxops.cli.generate:generate",
        "models": "ctxops.cli.models:models",
        "monitor": "ctxops.cli.monitor:monitor",
        "plan": "ctxops.cli.plan:plan",
        "registry": "ctxops.cli.registry:registry",
        "rollout": "ctxops.cli.rollout:rollout",
        "report": "ctxops.cli.report:report",
        "scan": "ctxops.cli.scan:scan",
        "serve": "ctxops.cli.serve:serve",
    },
)
@click.version_option(__version__, prog_name="ctxops")
def cli() -> None:
    """Plan, serve, evaluate and compress long-context language models."""

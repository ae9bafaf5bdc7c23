"""``python -m ctxops`` runs the CLI."""

from ctxops.cli.main import cli

if __name__ == "__main__":
    cli()

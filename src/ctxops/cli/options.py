"""Click options generated from config dataclasses, so a flag's default and help live only in the dataclass."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

import click

from ctxops.engine.config import EngineConfig
from ctxops.engine.sampling_params import SamplingParams


class FiniteFloat(click.ParamType):
    """A float flag that refuses ``nan`` and ``inf`` (Python's float() accepts both; no setting means either)."""

    name = "float"

    def __init__(self, low: float | None = None, high: float | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            self.fail(f"{number:g} is not in [{self.low:g}, {self.high:g}]", param, ctx)
        return number


FINITE_FLOAT = FiniteFloat()  # every float flag of the CLI uses this type
_TYPES = {"int": int, "int | None": int, "float": FINITE_FLOAT, "str": str, "str | None": str}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def dataclass_options(
    cls: type, include: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> Callable:
    """Decorate a click command with one option per dataclass field (defaults and help from the field)."""
    chosen = [
        f
        for f in dataclasses.fields(cls)
        if (include is None or f.name in include) and f.name not in set(exclude)
    ]

    def decorate(func: Callable) -> Callable:
        for f in reversed(chosen):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            help_text = f.metadata.get("help", "")
            if f.type == "bool":
                option = click.option(
                    f"{_flag(f.name)}/--no-{f.name.replace('_', '-')}",
                    f.name,
                    default=default,
                    show_default=True,
                    help=help_text,
                )
            elif f.type.startswith("list"):
                option = click.option(_flag(f.name), f.name, multiple=True, help=help_text)
            else:
                kind: Any = str if "parse" in f.metadata else _TYPES.get(f.type, str)
                option = click.option(
                    _flag(f.name),
                    f.name,
                    type=kind,
                    default=default,
                    show_default=default is not None,
                    help=help_text,
                )
            func = option(func)
        return func

    return decorate


def engine_options(func: Callable) -> Callable:
    """Every engine setting but the model (commands take the model their own way)."""
    return dataclass_options(EngineConfig, exclude=("model",))(func)


def target_options(api_help: str = "endpoint route") -> Callable[[Callable], Callable]:
    """The flags that name what a run talks to: an in-process model, or an endpoint (eval, scan)."""
    options = [
        click.option(
            "--model", "-m", default=None, help="`builtin` or a local model directory (the in-process target)"
        ),
        click.option(
            "--endpoint", default=None, help="an OpenAI-compatible server URL, e.g. http://localhost:8000/v1"
        ),
        click.option(
            "--model-name", default=None, help="the model name the endpoint serves (with --endpoint)"
        ),
        click.option(
            "--api",
            type=click.Choice(["chat", "completions"]),
            default="chat",
            show_default=True,
            help=api_help,
        ),
        click.option("--api-key", envvar="OPENAI_API_KEY", default=None, help="bearer key for the endpoint"),
        click.option(
            "--tokenizer",
            default=None,
            help="count lengths with this local tokenizer when the server has no /tokenize",
        ),
    ]

    def apply(func: Callable) -> Callable:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


def build(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate ``cls`` from the click values that belong to it; ValueErrors become usage errors."""
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items() if k in names}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        field_name = message.split(" ", 1)[0]
        if field_name in names:  # "seed must be ..." -> "--seed: seed must be ...", the flag the user typed
            raise click.BadParameter(message, param_hint=f"'{_flag(field_name)}'") from exc
        raise click.BadParameter(message) from exc


SAMPLING_FLAGS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "min_tokens",
    "stop",
    "ignore_eos",
    "logprobs",
)


def sampling_options(func: Callable) -> Callable:
    """The sampling flags ``generate`` exposes, from ``SamplingParams``."""
    return dataclass_options(SamplingParams, include=SAMPLING_FLAGS)(func)

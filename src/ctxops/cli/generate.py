"""``ctxops generate``: run prompts through the embedded engine and print the completions."""

from __future__ import annotations

import json
import sys

import click

from ctxops.cli.options import build, engine_options, sampling_options
from ctxops.engine.config import EngineConfig
from ctxops.engine.llm import LLM
from ctxops.engine.llm_engine import EngineBrokenError
from ctxops.engine.sampling_params import SamplingParams
from ctxops.engine.sequence import FinishReason
from ctxops.models.config import ModelConfigError


@click.command()
@click.argument("prompts", nargs=-1)
@click.option(
    "--model",
    "-m",
    default=EngineConfig.default("model"),
    show_default=True,
    help=EngineConfig.help("model"),
)
@click.option("--chat", is_flag=True, help="wrap each prompt as a user message in the model's chat template")
@click.option(
    "--json", "as_json", is_flag=True, help="print one JSON object per prompt (text, tokens, timings)"
)
@engine_options
@sampling_options
def generate(prompts: tuple[str, ...], model: str, chat: bool, as_json: bool, **options) -> None:
    """Generate completions for PROMPTS (use - to read one prompt from stdin).

    Example: ctxops generate --model ./my-model --max-tokens 32 "The capital of France is"
    """
    prompt_list = [sys.stdin.read() if p == "-" else p for p in prompts]
    if not prompt_list:
        raise click.UsageError("give at least one prompt (or - to read one from stdin)")
    config = build(EngineConfig, {**options, "model": model})
    params = build(SamplingParams, options)
    try:
        llm = LLM(**{f: getattr(config, f) for f in config.__dataclass_fields__})
    except (ModelConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        if chat:
            outputs = llm.chat(
                [[{"role": "user", "content": p}] for p in prompt_list], params, use_tqdm=False
            )
        else:
            outputs = llm.generate(prompt_list, params, use_tqdm=False)
    except (ValueError, EngineBrokenError) as exc:
        raise click.ClickException(str(exc)) from exc
    failed = 0
    for i, out in enumerate(outputs):
        completion = out.outputs[0]
        if completion.finish_reason == FinishReason.ERROR:  # the others still print; the exit status says it
            failed += 1
            click.echo(f"error: prompt {i + 1} failed in the engine: {completion.error}", err=True)
            continue
        if as_json:
            record = {
                "prompt": out.prompt,
                "text": completion.text,
                "prompt_tokens": len(out.prompt_token_ids),
                "cached_tokens": out.num_cached_tokens,
                "token_ids": completion.token_ids,
                "finish_reason": completion.finish_reason,
                "ttft_s": out.metrics.time_to_first_token if out.metrics else None,
            }
            click.echo(json.dumps(record))
        else:
            click.echo(completion.text)
    if failed:
        raise SystemExit(1)

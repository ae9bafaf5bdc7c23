"""``ctxops plan``: memory, concurrency, latency and cost of a model on a GPU, before the hardware is bought.

Imports no torch: the engine is loaded only for ``--measure``.
"""

from __future__ import annotations

import json
from dataclasses import fields

import click

from ctxops.cli.options import FINITE_FLOAT
from ctxops.models.config import ModelConfigError
from ctxops.plan.dtypes import KvDtype, WeightDtype, choices
from ctxops.plan.hardware import Device, UnknownGpuError, custom_device, gpu_names, parse_gpu
from ctxops.plan.memory import EngineProfile
from ctxops.plan.model_source import ModelSource, UnknownArchitectureError, UnknownModelError, resolve_model
from ctxops.plan.performance import Efficiency
from ctxops.plan.planner import PlanRequest, make_plan
from ctxops.plan.recommend import recommend
from ctxops.plan.report import plan_table, print_table, recommend_table

_DEFAULTS = {f.name: f.default for f in fields(PlanRequest)}
_EFFICIENCY = {f.name: f.default for f in fields(Efficiency)}


@click.command()
@click.argument("model")
@click.option("--gpu", default="h100", show_default=True, help=f"NAME[xN]: {', '.join(gpu_names())}")
@click.option(
    "--gpu-memory",
    type=FINITE_FLOAT,
    help="custom device: memory in GiB (with --gpu-bandwidth, --gpu-tflops)",
)
@click.option("--gpu-bandwidth", type=FINITE_FLOAT, help="custom device: memory bandwidth in GB/s")
@click.option("--gpu-tflops", type=FINITE_FLOAT, help="custom device: dense bf16 TFLOP/s")
@click.option(
    "--weights",
    type=click.Choice(choices(WeightDtype)),
    help="weight format [default: checkpoint's, else bf16]",
)
@click.option(
    "--kv-dtype", type=click.Choice(choices(KvDtype)), default=_DEFAULTS["kv_dtype"].value, show_default=True
)
@click.option("--tp", type=int, help="tensor-parallel size [default: the GPU count]")
@click.option("--max-model-len", type=int, help="tokens per request [default: the model's limit]")
@click.option(
    "--concurrency",
    type=int,
    default=_DEFAULTS["concurrency"],
    show_default=True,
    help="requests of max-model-len tokens served at once",
)
@click.option(
    "--gpu-memory-utilization",
    type=FINITE_FLOAT,
    default=_DEFAULTS["gpu_memory_utilization"],
    show_default=True,
)
@click.option("--block-size", type=int, default=_DEFAULTS["block_size"], show_default=True)
@click.option(
    "--max-num-batched-tokens", type=int, default=_DEFAULTS["max_num_batched_tokens"], show_default=True
)
@click.option("--input-len", type=int, help="prompt tokens for TTFT [default: max-model-len - output-len]")
@click.option("--output-len", type=int, default=_DEFAULTS["output_len"], show_default=True)
@click.option(
    "--engine-profile",
    type=click.Choice(choices(EngineProfile)),
    default=_DEFAULTS["profile"].value,
    show_default=True,
    help="v1: activation a measured constant; v0: grows with max-model-len",
)
@click.option(
    "--activation-gib", type=FINITE_FLOAT, help="activation peak per GPU in GiB [default: the profile's]"
)
@click.option("--cuda-graphs-gib", type=FINITE_FLOAT, default=_DEFAULTS["cuda_graphs_gib"], show_default=True)
@click.option(
    "--bandwidth-efficiency", type=FINITE_FLOAT, default=_EFFICIENCY["bandwidth"], show_default=True
)
@click.option("--compute-efficiency", type=FINITE_FLOAT, default=_EFFICIENCY["compute"], show_default=True)
@click.option(
    "--price-per-gpu-hour", type=FINITE_FLOAT, help="USD [default: the catalogue's indicative price]"
)
@click.option("--max-ttft", type=FINITE_FLOAT, help="target: seconds to first token")
@click.option("--min-decode-speed", type=FINITE_FLOAT, help="target: tokens/s per user")
@click.option("--recommend", "do_recommend", is_flag=True, help="list the cheapest setups that fit instead")
@click.option("--top", type=int, default=10, show_default=True, help="setups --recommend lists")
@click.option(
    "--measure", "do_measure", is_flag=True, help="run MODEL (a directory) on this machine and compare"
)
@click.option(
    "--kv-cache-memory", type=int, default=64 * 2**20, show_default=True, help="--measure: KV bytes"
)
@click.option(
    "--assume-dense",
    is_flag=True,
    help="plan a config.json of a family the planner does not know as a dense decoder (an estimate, flagged)",
)
@click.option("--json", "as_json", is_flag=True, help="print machine-readable JSON")
def plan(
    model: str,
    gpu: str,
    as_json: bool,
    do_recommend: bool,
    top: int,
    do_measure: bool,
    assume_dense: bool,
    **options,
) -> None:
    """Plan MODEL (a preset, a Hugging Face id of one, a config.json, a model directory or builtin).

    Example: ctxops plan llama-3.1-8b --gpu rtx3090 --max-model-len 20000 --weights int4
    """
    source = _resolve(model, assume_dense)
    if source.warnings and (as_json or do_recommend or do_measure):  # the table shows them in a row
        for warning in source.warnings:
            click.echo(f"Warning: {warning}", err=True)
    if do_measure:
        _measure(source, options, as_json)
        return
    request = _request(source, gpu, options)
    if do_recommend:
        plans = recommend(request, limit=top)
        if as_json:
            click.echo(json.dumps([p.to_dict() for p in plans], indent=2))
        elif not plans:
            raise click.ClickException("no catalogue setup of up to 8 GPUs fits these targets")
        else:
            print_table(recommend_table(plans))
        return
    result = make_plan(request)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_table(plan_table(result))


def _resolve(model: str, assume_dense: bool) -> ModelSource:
    try:
        return resolve_model(model, assume_dense)
    except UnknownArchitectureError as exc:
        raise click.ClickException(
            f"{exc}. To plan it as a dense decoder anyway, pass --assume-dense (the plan is then an estimate, "
            "flagged in the report)."
        ) from exc
    except (UnknownModelError, ModelConfigError) as exc:
        raise click.ClickException(str(exc)) from exc


def _device(gpu: str, options: dict) -> tuple[Device, int]:
    custom = [options.pop(k) for k in ("gpu_memory", "gpu_bandwidth", "gpu_tflops")]
    if any(v is not None for v in custom):
        if any(v is None or v <= 0 for v in custom):
            raise click.BadParameter(
                "give all three, positive: --gpu-memory GiB, --gpu-bandwidth GB/s, --gpu-tflops"
            )
        return custom_device(*custom), 1
    try:
        return parse_gpu(gpu)
    except UnknownGpuError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpu") from exc


def _request(source: ModelSource, gpu: str, options: dict) -> PlanRequest:
    device, count = _device(gpu, options)
    try:
        return PlanRequest(
            config=source.config,
            device=device,
            model_name=source.name,
            num_gpus=count,
            tp=options["tp"],
            weights=WeightDtype(options["weights"]) if options["weights"] else None,
            kv_dtype=KvDtype(options["kv_dtype"]),
            max_model_len=options["max_model_len"],
            concurrency=options["concurrency"],
            gpu_memory_utilization=options["gpu_memory_utilization"],
            block_size=options["block_size"],
            max_num_batched_tokens=options["max_num_batched_tokens"],
            input_len=options["input_len"],
            output_len=options["output_len"],
            profile=EngineProfile(options["engine_profile"]),
            activation_gib=options["activation_gib"],
            cuda_graphs_gib=options["cuda_graphs_gib"],
            efficiency=Efficiency(options["bandwidth_efficiency"], options["compute_efficiency"]),
            price_per_gpu_hour=options["price_per_gpu_hour"],
            max_ttft_s=options["max_ttft"],
            min_decode_tok_s=options["min_decode_speed"],
            warnings=source.warnings,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _measure(source: ModelSource, options: dict, as_json: bool) -> None:
    if source.directory is None:
        raise click.ClickException(
            f"--measure runs the model: pass a local model directory or builtin, not the preset {source.name!r}"
        )
    from ctxops.plan.measure import measure

    try:
        rows = measure(
            source.directory,
            kv_cache_memory=options["kv_cache_memory"],
            max_model_len=options["max_model_len"] or 256,
            block_size=options["block_size"],
        )
    except (ModelConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2))
        return
    from rich.table import Table

    table = Table(title=f"ctxops plan --measure: {source.name} on this CPU")
    for name in ("quantity", "predicted", "measured", "measured / predicted"):
        table.add_column(name, justify="left" if name == "quantity" else "right")
    for row in rows:
        table.add_row(
            f"{row.name} ({row.unit})", f"{row.predicted:.6g}", f"{row.measured:.6g}", f"{row.ratio:.2f}"
        )
    print_table(table)

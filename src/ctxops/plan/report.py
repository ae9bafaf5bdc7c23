"""Readable output for plans: rich tables of memory, speed, cost and recommendations.

This module knows presentation only; every number comes from :class:`Plan`.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ctxops.plan.memory import GiB
from ctxops.plan.planner import Plan


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / GiB:,.2f} GiB"


def plan_table(plan: Plan) -> Table:
    """One plan as a two-column table: the inputs, the memory budget, the pool, speed, cost and the verdict."""
    req, mem, layout = plan.request, plan.memory, plan.model_layout
    gpus = f"{req.num_gpus} x {req.device.name}" + (
        f" (TP {req.tensor_parallel})" if req.num_gpus > 1 else ""
    )
    table = Table(
        title=f"ctxops plan: {req.model_name or req.config.architecture} on {gpus}", show_header=False
    )
    table.add_column("term", style="bold")
    table.add_column("value", justify="right")
    table.add_column("note", style="dim")
    rows = [
        ("parameters", f"{plan.params.total / 1e9:,.2f} B", _active_note(plan)),
        ("weights", _gib(plan.weights_bytes), f"{req.weight_dtype.value}, {_gib(mem.weights)} per GPU"),
        ("KV bytes per token", f"{layout.bytes_per_token:,}", _kv_note(plan)),
        ("memory budget per GPU", _gib(mem.budget), f"{_gib(mem.total)} x {req.gpu_memory_utilization}"),
        ("- activation peak", _gib(mem.activation), f"vLLM profile {req.profile.value}" + _set_note(req)),
        ("- non-torch", _gib(mem.non_torch), "CUDA context, NCCL"),
        ("- CUDA graphs", _gib(mem.cuda_graphs), "measured -0.88..+1.03 GiB; --cuda-graphs-gib"),
        ("KV pool per GPU", _gib(mem.kv_pool), f"block size {req.block_size}"),
        ("KV cache tokens", f"{mem.kv_cache_tokens:,}", f"per replica, {req.replicas} replica(s)"),
        ("max concurrency", f"{mem.max_concurrency * req.replicas:.2f}x", f"at {req.context:,} tokens"),
        ("TTFT", f"{plan.ttft_s:.3f} s", f"{req.prompt_len:,}-token prompt, MFU {req.efficiency.compute}"),
        ("decode", f"{plan.decode_step_s * 1e3:.2f} ms/token", _decode_note(plan)),
        ("throughput", f"{plan.throughput_tok_s:,.1f} tok/s", f"{plan.decode_tok_s:,.1f} tok/s decode only"),
        ("cost", f"${plan.cost_per_million:,.2f} / M tokens", f"${plan.price_per_hour}/GPU-hour"),
    ]
    for row in rows:
        table.add_row(*row)
    verdict = "[green]fits[/green]" if plan.fits else f"[red]does not fit ({plan.limit.value})[/red]"
    table.add_row("verdict", verdict, plan.reason)
    for warning in req.warnings:
        table.add_row("[yellow]warning[/yellow]", "[yellow]estimate[/yellow]", warning)
    return table


def _active_note(plan: Plan) -> str:
    if plan.params.active == plan.params.total:
        return "dense"
    return f"{plan.params.active / 1e9:,.2f} B active (MoE)"


def _kv_note(plan: Plan) -> str:
    layout, req = plan.model_layout, plan.request
    note = f"{req.kv_dtype.value}, {layout.num_full_layers} global layers"
    if layout.is_hybrid:
        note += f" + {layout.num_sliding_layers} windowed ({layout.window:,} tokens)"
    if req.config.is_mla:
        note += ", MLA latent"
    return note


def _set_note(req) -> str:
    return " (set)" if req.activation_gib is not None else "; --activation-gib"


def _decode_note(plan: Plan) -> str:
    req = plan.request
    return f"batch {req.concurrency}, bandwidth efficiency {req.efficiency.bandwidth}"


def recommend_table(plans: list[Plan]) -> Table:
    """Recommendations, cheapest first."""
    table = Table(title="ctxops plan --recommend: cheapest setups that fit")
    for name in (
        "GPU",
        "weights",
        "KV",
        "KV tokens",
        "max conc.",
        "TTFT s",
        "tok/s/user",
        "tok/s",
        "$/M tok",
    ):
        table.add_column(name, justify="right" if name not in ("GPU", "weights", "KV") else "left")
    for plan in plans:
        req, mem = plan.request, plan.memory
        table.add_row(
            f"{req.num_gpus} x {req.device.name}",
            req.weight_dtype.value,
            req.kv_dtype.value,
            f"{mem.kv_cache_tokens:,}",
            f"{mem.max_concurrency * req.replicas:.2f}",
            f"{plan.ttft_s:.2f}",
            f"{1 / plan.decode_step_s:.1f}",
            f"{plan.throughput_tok_s:,.0f}",
            f"{plan.cost_per_million:,.2f}",
        )
    return table


def print_table(table: Table) -> None:
    """Print ``table`` to the terminal."""
    Console().print(table)

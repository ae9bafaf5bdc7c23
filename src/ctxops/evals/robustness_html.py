"""The robustness section of ``report.html`` and its terminal table: drops with intervals, worst first.

It renders :func:`ctxops.evals.robustness.summarize_robustness`'s output: the robust effective length, the
in-distribution / held-out split when the model card lists what the model was trained on, one row per variant
(clean, perturbed, drop with its 95% interval, McNemar p) and a variant × length grid of drops. This module knows
the summary dict and HTML / rich, not statistics.
"""

from __future__ import annotations

import html
from typing import Any

from rich.console import Console
from rich.table import Table

from ctxops.evals.config import format_length

ALPHA = 0.05  # where the table marks a drop significant (McNemar p, or an interval that excludes zero)


def _e(value: Any) -> str:
    return html.escape(str(value))


def significant(row: dict[str, Any]) -> bool:
    """True when McNemar's p < 0.05 or the bootstrap interval excludes zero."""
    return row["mcnemar_p"] < ALPHA or row["drop_low"] > 0 or row["drop_high"] < 0


def _drop(row: dict[str, Any]) -> str:
    shade = max(0, min(120, 120 - int(row["drop"] * 1.2)))  # 0 drop green, 100 red
    mark = " *" if significant(row) else ""
    return (
        f'<td style="background:hsl({shade},70%,88%)">{row["drop"]:+.1f}{mark} '
        f'<span class="ci">[{row["drop_low"]:+.1f}, {row["drop_high"]:+.1f}]</span></td>'
    )


def headline(robust: dict[str, Any]) -> str:
    """One sentence: the robust effective length and the variant it comes from."""
    eff = robust.get("robust_effective_length")
    if not eff:
        return ""

    def show(value: int | None) -> str:
        return format_length(value) if value else "below the shortest length"

    return (
        f'<p class="headline" id="robust-length">Robust effective length (worst variant, '
        f"<b>{_e(eff['variant'])}</b>): <b>{show(eff['point_estimate'])}</b> "
        f'<span class="ci">[{show(eff["lower_bound"])}, {show(eff["upper_bound"])}] from the 95% Wilson bounds</span>'
        "</p>"
    )


def section(robust: dict[str, Any] | None) -> str:
    """The whole robustness section ('' when the run has no perturbed samples)."""
    if not robust:
        return ""
    head = (
        "<th>variant</th><th>n</th><th>clean</th><th>perturbed</th><th>drop [95% CI]</th><th>McNemar p</th>"
    )
    rows = "".join(
        f"<tr><td>{_e(r['variant'])}</td><td>{r['n']}</td><td>{r['clean']:.1f}</td><td>{r['perturbed']:.1f}</td>"
        f"{_drop(r)}<td>{r['mcnemar_p']:.3g}</td></tr>"
        for r in robust["variants"]
    )
    lengths = sorted({r["length"] for r in robust["by_length"]})
    grid = {(r["variant"], r["length"]): r for r in robust["by_length"]}
    grid_rows = "".join(
        f"<tr><td>{_e(r['variant'])}</td>"
        + "".join(
            _drop(grid[(r["variant"], n)]) if (r["variant"], n) in grid else "<td>-</td>" for n in lengths
        )
        + "</tr>"
        for r in robust["variants"]
    )
    parts = [
        "<h2>Robustness</h2>",
        headline(robust),
        split_table(robust),
        f'<table id="robustness-table"><tr>{head}</tr>{rows}</table>',
        f'<p class="ci">{_e(robust["definition"])}; * significant at {ALPHA:g}; worst first.</p>',
        "<h3>Drop by length</h3>",
        '<table id="robustness-lengths"><tr><th>variant</th>'
        + "".join(f"<th>{format_length(n)}</th>" for n in lengths)
        + f"</tr>{grid_rows}</table>",
    ]
    return "\n".join(p for p in parts if p)


def split_table(robust: dict[str, Any]) -> str:
    """In-distribution vs held-out drops, when the model card lists what the model was trained on."""
    splits = robust.get("splits") or {}
    if not splits:
        return ""
    trained = robust.get("trained_on") or {}
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{r['n']}</td><td>{r['clean']:.1f}</td><td>{r['perturbed']:.1f}</td>{_drop(r)}"
        f"<td>{r['mcnemar_p']:.3g}</td></tr>"
        for name, r in splits.items()
        if r
    )
    note = (
        f"model card: trained on tasks {', '.join(trained.get('tasks', [])) or 'none listed'} and perturbations "
        f"{', '.join(trained.get('perturbations', [])) or 'none listed'}"
    )
    return (
        '<table id="robustness-splits"><tr><th>split</th><th>n</th><th>clean</th><th>perturbed</th>'
        f'<th>drop [95% CI]</th><th>McNemar p</th></tr>{rows}</table><p class="ci">{_e(note)}</p>'
    )


def print_robustness(robust: dict[str, Any] | None, console: Console) -> None:
    """The variant table in the terminal, worst first."""
    if not robust:
        return
    table = Table(title="robustness: drop = clean - perturbed, paired by seed (95% bootstrap CI)",
                  title_justify="left")  # fmt: skip
    for column in ("variant", "n", "clean", "perturbed", "drop [95% CI]", "McNemar p"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in robust["variants"]:
        colour = "red" if significant(r) and r["drop"] > 0 else "white"
        table.add_row(
            r["variant"], str(r["n"]), f"{r['clean']:.1f}", f"{r['perturbed']:.1f}",
            f"[{colour}]{r['drop']:+.1f}[/{colour}] [dim][{r['drop_low']:+.1f}, {r['drop_high']:+.1f}][/dim]",
            f"{r['mcnemar_p']:.3g}",
        )  # fmt: skip
    console.print(table)
    eff = robust.get("robust_effective_length")
    if eff:
        show = lambda v: format_length(v) if v else "below the shortest length"  # noqa: E731
        console.print(
            f"robust effective length ({eff['variant']}): {show(eff['point_estimate'])} "
            f"[{show(eff['lower_bound'])}, {show(eff['upper_bound'])}]"
        )

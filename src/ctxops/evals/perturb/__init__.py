"""Perturbations: each selected task run again under each family's levels, at the clean items' seeds.

``--perturb distractors,format`` (or ``all``) expands, per task, into the variants (``family=level``) that apply to
it; :func:`expand` does that and refuses an unknown family or level, or a family that does not apply to a task,
naming the valid choices. :func:`perturbation` gives the object that builds one planned variant. One file per
family: distractors, formats, paraphrase, lexical, haystacks, placement, noise. This package knows task names and
sample specs, not targets, runs or statistics (those are :mod:`ctxops.evals.robustness`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ctxops.evals.perturb.base import Family, Perturber, PerturbError, Variant
from ctxops.evals.perturb.distractors import Distractors
from ctxops.evals.perturb.formats import Format
from ctxops.evals.perturb.haystacks import Haystacks
from ctxops.evals.perturb.lexical import Lexical
from ctxops.evals.perturb.noise import Noise
from ctxops.evals.perturb.paraphrase import Paraphrase
from ctxops.evals.perturb.placement import Placement
from ctxops.evals.sample import SampleSpec
from ctxops.evals.tasks import get_task

FAMILIES: dict[Family, type[Perturber]] = {
    cls.FAMILY: cls for cls in (Distractors, Format, Paraphrase, Lexical, Haystacks, Placement, Noise)
}
ALL = "all"


def applicable(task: str, family: Family) -> list[str]:
    """The levels of ``family`` that apply to ``task``."""
    info, cls = get_task(task), FAMILIES[family]
    return [level for level in cls.LEVELS if cls.why_not(info, level) is None]


def families_for(task: str) -> list[str]:
    """The families with at least one level that applies to ``task``."""
    return [f.value for f in FAMILIES if applicable(task, f)]


def _parse(item: str) -> tuple[Family, str | None]:
    family, _, level = item.partition("=")
    if family not in FAMILIES:
        raise PerturbError(
            f"unknown perturbation family {family!r}; choose from: {', '.join(FAMILIES)} (or {ALL})"
        )
    cls = FAMILIES[Family(family)]
    if level and level not in cls.LEVELS:
        raise PerturbError(f"{family} has no level {level!r}; choose from: {', '.join(cls.LEVELS)}")
    return Family(family), level or None


def expand(text: str, tasks: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``"distractors,placement=middle"`` or ``all`` -> per task, its variant names, in family order.

    With ``all`` each task gets every variant that applies to it; a named family or level must apply to every
    task, else PerturbError says why not and names the families that do apply to that task.
    """
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise PerturbError(f"--perturb is empty; give families ({', '.join(FAMILIES)}) or {ALL}")
    if ALL in items:
        if len(items) > 1:
            raise PerturbError(f"--perturb {ALL} already holds every family; give {ALL} alone")
        return {t: tuple(f"{f.value}={lv}" for f in FAMILIES for lv in applicable(t, f)) for t in tasks}
    parsed = [_parse(item) for item in items]
    out: dict[str, tuple[str, ...]] = {}
    for task in tasks:
        names: list[str] = []
        info = get_task(task)
        for family, level in parsed:
            cls = FAMILIES[family]
            levels = [level] if level else applicable(task, family)
            reason = cls.why_not(info, level or cls.LEVELS[0])
            if (level and reason) or not levels:
                what = f"{family.value}={level}" if level else family.value
                valid = ", ".join(families_for(task)) or "none"
                raise PerturbError(
                    f"perturbation {what} does not apply to task {task} ({reason}); families that apply to "
                    f"{task}: {valid}"
                )
            names += [f"{family.value}={lv}" for lv in levels]
        out[task] = tuple(dict.fromkeys(names))
    return out


def perturbation(spec: SampleSpec) -> Perturber | None:
    """The object that builds ``spec``'s variant (None for a clean spec)."""
    if not spec.variant:
        return None
    variant = Variant.parse(spec.variant)
    cls = FAMILIES[variant.family]
    reason = cls.why_not(get_task(spec.task), variant.level)
    if variant.level not in cls.LEVELS or reason:
        raise PerturbError(
            f"variant {spec.variant} cannot build task {spec.task}: {reason or 'unknown level'}"
        )
    return cls(variant.level, spec)


__all__ = ["ALL", "FAMILIES", "Family", "PerturbError", "Variant", "applicable", "expand", "perturbation"]

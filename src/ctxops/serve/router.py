"""The gateway's router: the routes in force, swapped whole on reload, and the order of arms for one request.

``plan`` turns a request into the arms to try, first choice first, each with the reason it is there:
``weighted`` ranks arms by sticky weighted rendezvous (:func:`ctxops.serve.routing.rank`, so a user stays on one
arm); ``length`` puts the cheapest arm whose limits hold the prompt first (its max length for prompt + output,
and its effective length for the prompt), then the other arms that hold it, then those that do not (by size), so
short prompts stay on the small model and long ones go where they are answered; ``fallback`` keeps the weighted
order (the backend moves on further, on more kinds of failure); ``ensemble`` asks every arm. The effective length
of an arm that gives none comes from the lookup the gateway was built with (its latest eval run in the store).

A reload replaces one immutable :class:`~ctxops.serve.routes.Routes` object by another: a request planned
before keeps its plan (its stream is never cut), the next one sees the new weights. This module knows arms and
numbers, not HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from ctxops.serve.routes import Arm, ModelRoutes, Policy, Routes
from ctxops.serve.routing import rank

logger = logging.getLogger("ctxops.serve")
LengthLookup = Callable[[str, str | None], int | None]  # (served model, version) -> effective length, tokens


@dataclass(frozen=True, slots=True)
class Choice:
    """An arm to try and why it is in the plan."""

    arm: Arm
    reason: str  # weighted | length | length:overflow | ensemble


class Router:
    """The routes of the gateway's one served model, hot-swappable."""

    def __init__(self, routes: Routes, model: str, lookup: LengthLookup | None = None) -> None:
        self.model = model
        self.lookup = lookup
        self._routes = self._complete(routes)

    @property
    def routes(self) -> Routes:
        """The routes in force (with looked-up effective lengths filled in)."""
        return self._routes

    @property
    def current(self) -> ModelRoutes:
        """This model's arms and policy."""
        return self._routes.models[self.model]

    def swap(self, routes: Routes) -> None:
        """Put ``routes`` in force at once (one reference assignment: no request sees half of it)."""
        self._routes = self._complete(routes)
        logger.info("routes: %s", ", ".join(f"{a.name}={a.weight:g}" for a in self.current.arms))

    def _complete(self, routes: Routes) -> Routes:
        if self.lookup is None:
            return routes
        models = {}
        for name, model in routes.models.items():
            arms = tuple(
                a if a.effective_length is not None else replace(a, effective_length=self._lookup(name, a))
                for a in model.arms
            )
            models[name] = replace(model, arms=arms)
        return Routes(models)

    def _lookup(self, model: str, arm: Arm) -> int | None:
        assert self.lookup is not None
        try:
            return self.lookup(model, arm.version)
        except Exception as exc:  # the store is down: route on max lengths alone
            logger.warning("routes: no effective length for arm %s (%s)", arm.name, exc)
            return None

    def needs_prompt_tokens(self) -> bool:
        """Whether ``plan`` uses the prompt's token count (length policy with some arm's limit known)."""
        current = self.current
        return current.policy is Policy.LENGTH and any(a.limit() is not None for a in current.arms)

    def plan(self, sticky: str | None, prompt_tokens: int | None, max_tokens: int | None) -> list[Choice]:
        """Arms to try for one request, first choice first."""
        current = self.current
        if current.policy is Policy.ENSEMBLE:
            return [Choice(a, "ensemble") for a in current.arms]
        if current.policy is Policy.LENGTH:
            return _by_length(current.arms, prompt_tokens, max_tokens)
        order = rank([a.name for a in current.arms], [a.weight for a in current.arms], sticky)
        return [Choice(current.arms[i], current.policy.value) for i in order]


def _holds(arm: Arm, prompt: int, output: int) -> bool:
    if arm.max_model_len is not None and prompt + output > arm.max_model_len:
        return False
    return arm.effective_length is None or prompt <= arm.effective_length


def _by_length(arms: tuple[Arm, ...], prompt: int | None, max_tokens: int | None) -> list[Choice]:
    """Cheapest arm that holds the prompt first; arms that do not hold it last, the largest first."""
    by_cost = sorted(arms, key=lambda a: (a.cost, a.name))
    if prompt is None:  # unknown size: cheapest first, context_length_exceeded moves it on
        return [Choice(a, "length") for a in by_cost]
    fits = [a for a in by_cost if _holds(a, prompt, max_tokens or 0)]
    rest = sorted((a for a in arms if a not in fits), key=lambda a: -(a.limit() or 0))
    return [Choice(a, "length") for a in fits] + [Choice(a, "length:overflow") for a in rest]

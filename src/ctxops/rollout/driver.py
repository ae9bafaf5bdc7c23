"""The progressive rollout driver: steps of traffic, a verdict at each, promotion or rollback through the gateway.

At each step below 100% the driver sets the candidate's share through the gateway's admin API (the baseline gets
the rest), runs the same-seed canary on both arms' upstreams (recorded as models ``NAME@ARM``), then analyzes the
step's own traffic and canaries (:func:`ctxops.rollout.analysis.analyze` since the step began) every
``poll_seconds``: ``rollback`` ends the rollout at once (all traffic back to the baseline, an incident opened
naming the failed metrics, webhooks notified); ``promote`` after ``step_seconds`` moves to the next step; a step
still undecided after ``max_step_seconds`` rolls back (a progress deadline). Reaching 100% promotes: the
candidate takes all traffic. After every change the state is written to the store (``rollouts``), so a driver
killed at any point resumes where it was when run again; a finished rollout reruns as a no-op that reports it.
This module knows steps and verdicts; HTTP goes through :mod:`ctxops.rollout.gateway_admin`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from ctxops.rollout.analysis import Verdict, analyze
from ctxops.rollout.gateway_admin import GatewayAdmin
from ctxops.rollout.rollout_config import RolloutConfig
from ctxops.store import Store
from ctxops.store.incidents import open_incident
from ctxops.store.rollouts import load_rollout, save_rollout


class RolloutState(StrEnum):
    """Where a rollout stands."""

    RUNNING = "running"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class RolloutDriver:
    """Runs one rollout to its end (or resumes it), writing its state after every change."""

    def __init__(self, store: Store, config: RolloutConfig, admin: GatewayAdmin, out_root: Path,
                 log: Callable[[str], None] = print, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        self.store, self.config, self.admin, self.out_root = store, config, admin, out_root
        self.log, self.clock, self.sleep = log, clock, sleep

    def run(self) -> dict[str, Any]:
        """Drive the rollout to promoted or rolled_back; returns the final state row."""
        state = load_rollout(self.store, self.config.name)
        if state is None:
            now = self.clock()
            state = {"name": self.config.name, "state": RolloutState.RUNNING.value, "step": 0,
                     "config": self.config.to_dict(), "history": [], "started_at": now, "updated_at": now}  # fmt: skip
            self._save(state)
        elif state["state"] != RolloutState.RUNNING:
            self.log(f"rollout {self.config.name} already {state['state']}; nothing to do")
            return state
        else:
            self.log(
                f"resuming rollout {self.config.name} at step {state['step'] + 1} of {len(self.config.steps)}"
            )
        arms = {a["name"] for a in self.admin.routes(self.config.model)["arms"]}
        missing = {self.config.baseline, self.config.candidate} - arms
        if missing:
            raise ValueError(
                f"the gateway's routes have no arm {', '.join(sorted(missing))} (arms: {sorted(arms)})"
            )
        while state["state"] == RolloutState.RUNNING:
            self._step(state)
        return state

    def _save(self, state: dict[str, Any]) -> None:
        state["updated_at"] = self.clock()
        save_rollout(self.store, state)

    def _set_share(self, percent: float) -> None:
        c = self.config
        self.admin.set_weights({c.baseline: 100.0 - percent, c.candidate: percent})

    def _step(self, state: dict[str, Any]) -> None:
        c = self.config
        percent = c.steps[state["step"]]
        history = state["history"]
        if not history or history[-1].get("verdict") is not None:  # a new step (else: resuming this one)
            history.append({"step": state["step"] + 1, "percent": percent, "started_at": self.clock(),
                            "canaries": False, "verdict": None})  # fmt: skip
            self._set_share(percent)
            self.log(f"step {state['step'] + 1}: candidate {c.candidate} at {percent:g}% of traffic")
            self._save(state)
        entry = history[-1]
        if percent >= 100:
            entry.update(
                verdict=Verdict.PROMOTE.value, reasons=["every earlier step promoted"], ended_at=self.clock()
            )
            state["state"] = RolloutState.PROMOTED.value
            self._save(state)
            self.log(f"promoted: {c.candidate} serves all traffic")
            return
        if not entry["canaries"] and c.canary.samples > 0:
            self._canaries(state["step"] + 1)
            entry["canaries"] = True
            self._save(state)
        while True:
            result = analyze(self.store, c.model, c.baseline, c.candidate, entry["started_at"], c.analysis)
            elapsed = self.clock() - entry["started_at"]
            verdict, reasons = result["verdict"], result["reasons"]
            if verdict == Verdict.CONTINUE and elapsed >= c.max_step_seconds:
                verdict, reasons = (
                    Verdict.ROLLBACK.value,
                    [f"no verdict within {c.max_step_seconds:g} s", *reasons],
                )
            if verdict == Verdict.ROLLBACK or (verdict == Verdict.PROMOTE and elapsed >= c.step_seconds):
                break
            self.sleep(c.poll_seconds)
        entry.update(verdict=verdict, reasons=reasons, samples=result["samples"], ended_at=self.clock(),
                     metrics={m["name"]: m["class"] for m in result["metrics"]})  # fmt: skip
        self.log(f"step {state['step'] + 1}: {verdict} ({'; '.join(reasons)}); samples {result['samples']}")
        if verdict == Verdict.ROLLBACK:
            self._rollback(state, result, reasons)
        else:
            state["step"] += 1
        self._save(state)

    def _rollback(self, state: dict[str, Any], result: dict[str, Any], reasons: list[str]) -> None:
        from ctxops.monitor.notify import Webhook, notifications

        c = self.config
        self._set_share(0.0)
        state["state"] = RolloutState.ROLLED_BACK.value
        title = f"rollout {c.name} rolled back {c.candidate}: {'; '.join(reasons)}"
        incident = {
            "dedup_key": f"rollout:{c.name}",
            "rule": "rollout_rollback",
            "title": title,
            "details": result,
        }
        hooks = [Webhook(url) for url in c.webhooks]
        incident_id, _ = open_incident(self.store, incident["dedup_key"], "rollout_rollback", title, result,
                                       self.clock(), notifications(hooks, "opened", incident))  # fmt: skip
        state["incident_id"] = incident_id
        state["history"][-1]["incident_id"] = incident_id
        self.log(f"rolled back: all traffic to {c.baseline}; incident #{incident_id}")

    def _canaries(self, step: int) -> None:
        """The same-seed canary on both arms' upstreams, called directly (not through the gateway's weights)."""
        from ctxops.evals.config import EvalConfig
        from ctxops.evals.targets import Api, EndpointConfig, EndpointTarget
        from ctxops.monitor.canary import run_canary

        c = self.config
        arms = {a["name"]: a for a in self.admin.routes(c.model)["arms"]}
        eval_config = EvalConfig(tasks=c.canary.tasks, lengths=c.canary.lengths, samples=c.canary.samples,
                                 depths=1, seed=c.canary.seed, concurrency=4)  # fmt: skip
        for arm in (c.baseline, c.candidate):
            url = arms[arm]["upstream"]
            target = EndpointTarget(EndpointConfig(url=url, model_name=_model_id(url), api=Api(c.canary.api)))
            out = self.out_root / c.name / f"step{step}" / arm
            row = run_canary(self.store, target, eval_config, f"{c.model}@{arm}", out)
            overall = row["summary"]["overall"] or {}
            self.log(
                f"  canary {arm}: " + ", ".join(f"{k} tokens {v['score']:.0f}" for k, v in overall.items())
            )


def _model_id(url: str) -> str:
    """The first model id the upstream lists (what its canary requests name)."""
    response = httpx.get(url.rstrip("/") + "/models", timeout=10.0)
    response.raise_for_status()
    return response.json()["data"][0]["id"]

"""What the guard does: one frozen :class:`GuardConfig`, read from a TOML file and validated once.

The file has an ``[input]`` table (what clients send, every message in full) and an ``[output]`` table (what the
model answers, as it streams); each maps a rule to an action::

    [input]
    instruction = "block"      # injection rules: instruction, role_marker, invisible, encoded, classifier
    role_marker = "block"
    classifier = "log"         # the learned model of ctxops.detect.classifier (paraphrases the phrases miss)
    email = "redact"           # personal data: email, phone, credit_card, iban, us_ssn, ip_address
    credit_card = "block"

    [output]
    canaries = ["ZX7Q-91KD-4M"]  # strings that must never leave (planted in a system prompt, a private document)
    canary = "block"
    email = "redact"

    [options]
    pii_region = "US"          # how phone numbers without a +country prefix are read
    holdback_chars = 256       # output characters held back so a match across chunk boundaries is seen whole

Actions: ``log`` counts the finding and passes the text; ``redact`` replaces the match with ``<RULE>``; ``block``
refuses the request (400) or cuts the answer (finish reason ``content_filter``). A rule not listed is off. This
module knows settings, not requests.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ctxops.detect.canary import canary_core
from ctxops.detect.injection import RULES as INJECTION_RULES
from ctxops.detect.pii import PiiKind

CANARY = "canary"
PII_RULES = tuple(kind.value for kind in PiiKind)
INPUT_RULES = (*INJECTION_RULES, *PII_RULES)
OUTPUT_RULES = (CANARY, *INJECTION_RULES, *PII_RULES)
MAX_CANARY_CHARS = 64


class Action(StrEnum):
    """What a rule's match does."""

    LOG = "log"
    REDACT = "redact"
    BLOCK = "block"


class GuardConfigError(ValueError):
    """A guard file that cannot be read or says something the guard cannot do."""


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Rules and actions for both sides of a request."""

    input_rules: tuple[tuple[str, Action], ...] = ()
    output_rules: tuple[tuple[str, Action], ...] = ()
    canaries: tuple[str, ...] = ()
    pii_region: str = "US"
    holdback_chars: int = 256

    def __post_init__(self) -> None:
        for side, rules, known in (
            ("input", self.input_rules, INPUT_RULES),
            ("output", self.output_rules, OUTPUT_RULES),
        ):
            for rule, action in rules:
                if rule not in known:
                    raise ValueError(f"[{side}] {rule!r} is not a rule; choose from {', '.join(known)}")
                if not isinstance(action, Action):
                    raise ValueError(f"[{side}] {rule}: the action must be log, redact or block")
        for canary in self.canaries:
            canary_core(canary)
            if len(canary) > MAX_CANARY_CHARS:
                raise ValueError(f"canary {canary[:12]}... is longer than {MAX_CANARY_CHARS} characters")
        if dict(self.output_rules).get(CANARY) and not self.canaries:
            raise ValueError('[output] canary needs the canaries to look for: canaries = ["ZX7Q-91KD-4M"]')
        if self.canaries and CANARY not in dict(self.output_rules):
            raise ValueError('[output] canaries are listed but no action is set: add canary = "block"')
        if not MAX_CANARY_CHARS * 3 <= self.holdback_chars <= 65_536:
            raise ValueError(f"holdback_chars must be between {MAX_CANARY_CHARS * 3} and 65536")

    def action(self, side: str, rule: str) -> Action | None:
        """The action of ``rule`` on ``side`` ("input" or "output"); None when the rule is off."""
        return dict(self.input_rules if side == "input" else self.output_rules).get(rule)

    def rules(self, side: str) -> tuple[str, ...]:
        """The rules switched on for ``side``."""
        return tuple(rule for rule, _ in (self.input_rules if side == "input" else self.output_rules))

    @classmethod
    def from_file(cls, path: str | Path) -> GuardConfig:
        """Read a guard TOML file; every mistake is a :class:`GuardConfigError` naming the file and the key."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise GuardConfigError(f"{path}: cannot read the guard file ({exc.strerror})") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise GuardConfigError(f"{path}: not valid TOML ({exc})") from exc
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise GuardConfigError(f"{path}: {exc}") from exc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuardConfig:
        """Build from the parsed TOML tables (see the module docstring)."""
        unknown = set(data) - {"input", "output", "options"}
        if unknown:
            raise ValueError(
                f"unknown table(s) {sorted(unknown)}; a guard file has [input], [output], [options]"
            )
        output = dict(_table(data, "output"))
        canaries = output.pop("canaries", [])
        if not isinstance(canaries, list) or not all(isinstance(c, str) for c in canaries):
            raise ValueError('[output] canaries must be a list of strings: canaries = ["ZX7Q-91KD-4M"]')
        options = _table(data, "options")
        extra = set(options) - {"pii_region", "holdback_chars"}
        if extra:
            raise ValueError(f"[options] unknown key(s) {sorted(extra)}; known: pii_region, holdback_chars")
        if not isinstance(options.get("holdback_chars", 256), int):
            raise ValueError("[options] holdback_chars must be a whole number of characters")
        return cls(
            input_rules=_actions("input", _table(data, "input")),
            output_rules=_actions("output", output),
            canaries=tuple(canaries),
            pii_region=str(options.get("pii_region", "US")),
            holdback_chars=options.get("holdback_chars", 256),
        )


def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ValueError(f"{name} must be a table: [{name}]")
    return table


def _actions(side: str, table: dict[str, Any]) -> tuple[tuple[str, Action], ...]:
    out = []
    for rule, value in table.items():
        try:
            out.append((rule, Action(value)))
        except ValueError:
            raise ValueError(
                f'[{side}] {rule} = {value!r}: the action must be "log", "redact" or "block"'
            ) from None
    return tuple(out)

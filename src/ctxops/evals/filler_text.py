"""Generated filler that is not English prose: source code, JSON log lines and Spanish sentences.

Each generator returns ``count`` units (a line of code, a log line, a sentence) drawn from the caller's
``random.Random``, so a haystack stream of them is deterministic. All the text is generated here from word lists and
templates written for ctxops (no third-party text, so no licence to carry). The Spanish is simple and grammatical:
every noun carries its article, adjectives are gender-invariant, verbs are in the present tense. This module knows
strings, not tokens, tasks or prompts.
"""

from __future__ import annotations

import json
import random

from ctxops.evals import words

_PY_VERBS = (
    "load",
    "parse",
    "merge",
    "split",
    "update",
    "render",
    "check",
    "fetch",
    "store",
    "build",
    "scale",
)
_PY_NOUNS = ("config", "buffer", "record", "batch", "token", "window", "index", "report", "cache", "segment")
_SERVICES = ("billing", "auth", "search", "checkout", "inventory", "mailer", "gateway", "scheduler")
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")
_MESSAGES = (
    "request served", "cache miss", "retrying upstream call", "connection reset by peer", "job finished",
    "queue depth above target", "slow query", "token refreshed", "health check passed", "config reloaded",
)  # fmt: skip
_ES_NOUNS = (
    "el río", "la casa", "el perro", "la ventana", "el mercado", "la montaña", "el tren", "la ciudad", "el libro",
    "la plaza", "el puerto", "la calle", "el jardín", "la escuela", "el barco", "la torre", "el camino", "la mesa",
    "el pueblo", "la luna",
)  # fmt: skip
_ES_ADJECTIVES = ("grande", "verde", "alegre", "azul", "gris", "breve", "fuerte", "joven", "amable", "triste")
_ES_VERBS = ("mira", "cruza", "espera", "recuerda", "sigue", "busca", "encuentra", "visita", "deja", "cuida")
_ES_TIMES = (
    "por la mañana", "cada tarde", "en invierno", "durante la noche", "después de la lluvia", "sin prisa",
    "antes del verano", "todos los días",
)  # fmt: skip


def code_lines(rng: random.Random, count: int) -> list[str]:
    """``count`` lines of plausible Python: small functions with assignments, conditions and returns."""
    lines: list[str] = []
    while len(lines) < count:
        verb, noun = rng.choice(_PY_VERBS), rng.choice(_PY_NOUNS)
        arg = rng.choice(_PY_NOUNS)
        lines += [
            f"def {verb}_{noun}({arg}, limit={rng.randint(2, 512)}):",
            f"    total = sum(item.size for item in {arg}.items if item.size < limit)",
            f"    if total > {rng.randint(10, 9000)}:",
            f"        return {rng.choice(_PY_VERBS)}_{rng.choice(_PY_NOUNS)}({arg}[:limit])",
            f"    {noun} = {{'name': '{words.pseudo_word(rng)}', 'total': total}}",
            f"    return {noun}",
        ]
    return lines[:count]


def log_lines(rng: random.Random, count: int) -> list[str]:
    """``count`` JSON log lines (timestamp, level, service, message, latency)."""
    out = []
    for i in range(count):
        record = {
            "ts": f"2026-03-{1 + i // 86400 % 28:02d}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "level": rng.choice(_LEVELS),
            "service": rng.choice(_SERVICES),
            "msg": rng.choice(_MESSAGES),
            "latency_ms": rng.randint(1, 2500),
        }
        out.append(json.dumps(record))
    return out


def spanish_sentences(rng: random.Random, count: int) -> list[str]:
    """``count`` short Spanish sentences (a paragraph ends every 5 to 8 sentences, marked by a trailing newline)."""
    out = []
    until_break = rng.randint(5, 8)
    for _ in range(count):
        subject, thing = rng.sample(_ES_NOUNS, 2)
        sentence = (
            f"{subject[0].upper()}{subject[1:]} {rng.choice(_ES_ADJECTIVES)} {rng.choice(_ES_VERBS)} "
            f"{thing} {rng.choice(_ES_TIMES)}."
        )
        until_break -= 1
        if until_break == 0:
            sentence += "\n"
            until_break = rng.randint(5, 8)
        out.append(sentence)
    return out

"""Clause rules for :mod:`ctxops.detect.injection`: overrides found by co-occurrence, not by phrase.

A phrase list misses paraphrases ("your previous guidance is outdated; disregard it"). A clause rule asks for the
ingredients of an override in one clause (the text between sentence ends around an anchor): a verb that annuls, the
instructions, and (in English) a word placing them earlier. Measured against benign instruction-like documents in
``bench/guard_quality.py``. This module is data; it knows no text and no actions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Proximity:
    """An ``instruction`` signature by co-occurrence: a verb, a noun and (if given) a reference in one clause.

    Paraphrases defeat phrase lists ("your previous guidance is outdated, disregard it"); the three ingredients of
    an override (something that annuls, the instructions, and that they came earlier) are harder to avoid. The
    anchors are the verbs' stems; the clause is the text between sentence ends around the anchor.
    """

    label: str
    anchors: tuple[str, ...]
    verb: re.Pattern[str]
    noun: re.Pattern[str]
    reference: re.Pattern[str] | None
    cues: tuple[
        str, ...
    ] = ()  # substrings one of which every noun match holds: a cheap test before the regexes


PROXIMITY = (
    Proximity(
        "override of earlier instructions (paraphrased)",
        (
            "ignor",
            "disregard",
            "forget",
            "cancel",
            "void",
            "outdated",
            "obsolete",
            "overr",
            "nevermind",
            "never mind",
            "not obey",
            "n't obey",
            "stop obey",
            "never obey",
            "not follow",
            "n't follow",
            "stop follow",
            "never follow",
            "no longer",
            "discard",
            "abandon",
            "bypass",
            "throw",
            "abort",
            "set aside",
        ),
        re.compile(
            r"\b(?:ignor\w*|disregard\w*|forget\w*|cancel\w*|void|outdated|obsolete|overrid\w*|overrul\w*|"
            r"nevermind|never mind|(?:do not|don't|stop|never) (?:obey|follow)\w*|no longer (?:apply|valid|"
            r"in effect|relevant|matter|count)|discard\w*|abandon\w*|bypass\w*|throw (?:out|away)|"
            r"abort|set aside)\b"
        ),
        re.compile(
            r"\b(?:instructions?|rules?|guidance|guidelines?|directives?|prompts?|orders|programming|"
            r"constraints?|polic(?:y|ies)|directions|commands|what you were told|system message)\b"
        ),
        re.compile(
            r"\b(?:previous\w*|prior|earlier|above|before|preceding|original|initial\w*|so far|until now|"
            r"up to now|you were (?:given|handed|told|asked)|you have been given|you've been given)\b"
        ),
        (
            "instruction",
            "rule",
            "guid",
            "directive",
            "prompt",
            "order",
            "programming",
            "constraint",
            "polic",
            "direction",
            "what you were told",
            "system message",
            "command",
        ),  # fmt: skip
    ),
    Proximity(
        "override in another language (paraphrased)",
        tuple(
            [
                "ignor",
                "olvid",
                "oubli",
                "vergiss",
                "dimentic",
                "esque",
                "игнорир",
                "забудь",
                "忽略",
                "无视",
                "無視",
                "忘记",
                "忘れ",
                "negeer",
                "vergeet",
                "zignoruj",
                "zapomnij",
                "glöm",
                "abaikan",
                "무시",
                "잊어",
                "hagas caso",
                "caso omiso",
            ]
        ),
        re.compile(
            r"(?:\bignor\w*|\bolvid\w*|\boubli\w*|\bvergiss\w*|\bdimentic\w*|\besque[cç]\w*|игнорир\w*|"
            r"забудь\w*|忽略|无视|無視|忘记|忘れ|\bnegeer\w*|\bvergeet\b|\bzignoruj\w*|\bzapomnij\w*|\bglöm\w*|"
            r"\babaikan\b|무시|잊어|hagas caso|caso omiso)"
        ),
        re.compile(
            r"(?:instrucciones|instructions|consignes|anweisungen|instruktionen|istruzioni|instruções|"
            r"инструкции|указания|指令|指示|说明|instructies|aanwijzingen|instrukcje|polecenia|instruktioner|"
            r"instruksi|지시|지침)"
        ),
        None,
        (
            "instru",
            "consignes",
            "anweisungen",
            "istruzioni",
            "инструкции",
            "указания",
            "指令",
            "指示",
            "说明",
            "aanwijzingen",
            "instrukcje",
            "polecenia",
            "지시",
            "지침",
        ),
    ),
)

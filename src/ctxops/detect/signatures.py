"""The catalogue of injection phrases and role markers that :mod:`ctxops.detect.injection` looks for.

Each :class:`Signature` is a lower-case regular expression with the anchors (substrings every match contains) that
let the scanner skip text without one. The phrases are the kinds the public taxonomies describe (garak's
promptinject goal hijacks, BIPIA's text attacks, Greshake et al.'s indirect injections) in our own wording: overrides
of earlier instructions, messages addressed to the model, role changes, requests to leak hidden instructions,
concealment from the user, forced replies, overrides in other languages, chat-template tokens and fake turns.
This module is data; it knows no text and no actions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INSTRUCTION = "instruction"
ROLE_MARKER = "role_marker"

_PRIOR = r"(?:(?:all|any|each|every|the|your|my|of|these|those|such)\s+){0,3}"
_BEFORE = r"(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial|system|existing)"
_ORDERS = (
    r"(?:instructions?|directions?|directives?|rules?|prompts?|guidelines?|commands?|orders?|"
    r"constraints?|guardrails?|programming|context|messages?|policies|policy|tasks?)"
)
_MODEL = (
    r"(?:ai|a\.i\.|llm|language model|large language model|chatbot|ai assistant|assistant|model|agent|gpt)"
)


# who a message to the model names: the model words and the automated readers ("any automated summarizer")
_ADDRESSEE = (
    r"(?:ai (?:agent|tool|system|model|reader|summari[sz]er|assistant)|automated (?:assistant|agent|reader|"
    r"summari[sz]er|system|tool|reviewer|parser)|ai|a\.i\.|llm|language model|large language model|chatbot|"
    r"assistant|model|agent|gpt|bot|summari[sz]er|copilot|crawler)"
)

# common verbs of a command, for a sentence that names the model and then tells it what to do
_IMPERATIVE = (
    r"(?:you (?:must|should|will|need to|have to|are to)|do not|don't|never|always|ignore|forget|disregard|"
    r"stop|start|begin|include|add|insert|append|mention|say|state|write|print|output|reply|respond|answer|tell|"
    r"recommend|suggest|claim|describe|summari[sz]e|translate|use|switch|change|make|send|open|visit|call|"
    r"click|reveal|show|list|give|remove|delete|replace|return|format|follow|obey|act|pretend|treat|end|"
    r"report|inform|warn|ask|direct|redirect|link)\b"
)
# verbs that ask for text to be shown, and the words that make "your instructions" the model's own
_DISCLOSE = (
    r"(?:reveal|print|output|repeat|show|disclose|leak|display|recite|dump|write out|spell out|tell me|share|copy|"
    r"quote|send)"
)
# advice, not a request: "never share your system prompt", "do not reveal your instructions"
_NOT = r"(?<!never )(?<!not )(?<!n't )(?<!avoid )(?<!to never )"
_OWN = r"(?:system|initial|original|hidden|secret|developer|full|exact|complete|internal|confidential)"


@dataclass(frozen=True, slots=True)
class Signature:
    """A rule's pattern and its anchors.

    Every match contains one of the anchors, at most ``back`` characters after the match's start (0: the match
    starts at the anchor). Only text at an anchor is matched, which keeps long scans fast.
    """

    rule: str
    label: str
    anchors: tuple[str, ...]
    pattern: re.Pattern[str]
    back: int = 0
    commanded: bool = (
        False  # the match opens with a verb that must be given as a command (clauses.COMMAND_LEAD_IN)
    )


def _signature(
    rule: str, label: str, anchors: str, pattern: str, back: int = 0, commanded: bool = False
) -> Signature:
    return Signature(rule, label, tuple(anchors.split(";")), re.compile(pattern), back, commanded)


_OVERRIDE, _ADDRESSED, _ROLE, _FORCED = (
    "override of earlier instructions",
    "message addressed to the model",
    "change of the model's role",
    "forced reply",
)
SIGNATURES = (
    _signature(
        INSTRUCTION,
        _OVERRIDE,
        "ignor;disregard;forget;overr;bypass;discard;abandon;set aside;pay no;stop follow;do not follow;don't follow",
        r"\b(?:ignor(?:e|ing)|disregard(?:ing)?|forget(?:ting)?|overrid(?:e|ing)|overrul(?:e|ing)|bypass(?:ing)?|"
        r"discard(?:ing)?|abandon(?:ing)?|set aside|pay no attention to|stop following|do not follow|"
        rf"don't follow)\s+(?:{_PRIOR}{_BEFORE}\s+(?:\w+\s+){{0,2}}{_ORDERS}\b|everything (?:above|before|"
        r"you were told|you have been told)|all (?:of )?(?:that|the above)|what you were told|"
        r"(?:the |your )?(?:user'?s?|original|actual|real|summary|current) (?:request|question|task|query)\b|"
        r"(?:all )?(?:of )?the above(?=[ \t]*(?:[.,;:!?]|and\b|then\b|$))|"
        r"(?:all )?(?:the )?(?:text|content|words|lines) (?:before|above) this (?:sentence|line|point|message)\b)",
        commanded=True,
    ),
    _signature(
        INSTRUCTION,
        _OVERRIDE,
        "don't do;do not do;don't answer;do not answer;don't follow;do not follow;task you",
        r"\b(?:don't|do not) (?:do|answer|follow|complete|perform) (?:what|the (?:task|request|question)) "
        r"(?:the user|they|the person|the human|you were) (?:asked|requested|wants?|wanted|said|told)"
        r"|\b(?:nevermind|never mind|forget|ignore|drop|abandon|abort|skip|disregard) (?:the|your) (?:\w+ )?"
        r"task (?:you were given|you were assigned|you have been given|you've been given)\b",
        back=48,
    ),
    _signature(
        INSTRUCTION,
        _OVERRIDE,
        "no longer apply;do not apply;don't apply;are void;are cancelled;are canceled",
        r"\b(?:(?:previous|prior|earlier|above|original|system) (?:rules|instructions|guidelines|directions|"
        r"restrictions)|(?:rules|instructions|guidelines|directions|restrictions) (?:above|before|so far|you "
        r"were given)) (?:no longer apply|do not apply|don't apply|are void|are cancelled|are canceled)",
        back=64,
    ),
    _signature(
        INSTRUCTION,
        "new instructions for the model",
        "instruction;directive;orders",
        r"\b(?:new|updated|revised|real|true|secret|hidden|actual)\s+(?:system\s+)?(?:instructions?|directives?|"
        rf"orders)\s*(?:(?:for|to)\s+(?:the\s+|you,?\s+)?{_MODEL}\b|:)",
        back=24,
    ),
    _signature(
        INSTRUCTION,
        _ADDRESSED,
        "note;message;instruction;attention;important;reminder;memo;directive;word;notice;request",
        # not "your instructions to the agent are stored in ...": the writer's own instructions, described
        r"(?<!your )(?<!our )(?<!my )(?<!their )\b(?:note|message|instructions?|attention|important|reminder|"
        r"memo|directive|word|notice|request)\s+(?:to|for)\s+"
        rf"(?:the |any |all |every |each |whichever |an? )?{_ADDRESSEE}s?\b"
        # not product models: "instructions for models sold before 2020"
        r"(?:(?<!model)(?<!models)|(?! (?:sold|made|built|released|produced|manufactured|shipped|listed|numbered|"
        r"before|after|from|with|without|of|in|that|which)\b))"
        # and what follows is the message: a colon or dash, or a command ("... was filtered" is a report)
        r"(?=[^.\n]{0,60}?(?:[:\-\u2013\u2014]|\b(?:must|should|please|need to|needs to|is to|are to|has to|"
        r"have to|shall|will)\b))",
    ),
    _signature(
        INSTRUCTION,
        _ADDRESSED,
        "if you are;if you're;if you happen;if you might;if you may;dear;hey;hello;hi;attention;listen;if this;if the;"
        "ai;llm;language;chatbot;assistant",
        r"\bif you(?: are|'re| happen to be| might be| may be) an? (?:automated |artificial )?(?:ai|a\.i\.|llm|language model|large language model|"
        r"chatbot|ai assistant|assistant reading|model reading|bot\b|agent\b|summari[sz]er|crawler)"
        r"|\b(?:dear|hey|hello|hi|attention|listen),? (?:all |any |every )?(?:ai|llm|chatbot|ai assistant|"
        r"language model|chatgpt|gpt|claude|gemini|copilot|bard|llama|ai (?:systems?|models?|agents?|tools?))\b"
        # "AI models, listen up:"
        r"|\b(?:ai|llm|language|chatbot|assistant)s?(?: (?:models?|agents?|systems?|assistants?|tools?))?,? "
        r"(?:listen up|listen carefully|pay attention|take note|heads up)\b"
        # "if this page is being read by an AI"
        r"|\bif (?:this|the) (?:document|page|text|e-?mail|message|article|file|content|post|review|note) is being "
        r"(?:read|processed|summari[sz]ed|parsed|analy[sz]ed|scanned|indexed|crawled|reviewed) by an? (?:ai|llm|"
        r"language model|chatbot|model|bot|assistant|agent|automated)",
    ),
    _signature(
        INSTRUCTION,
        _ADDRESSED,
        "reading this;processing this;summarizing this;summarising this;parsing this;ingesting this;"
        "handling this;analyzing this;analysing this;indexing this;scanning this;crawling this",
        r"\b(?:ai|llm|language model|chatbot|ai assistant|assistant|model|bot|crawler|summari[sz]er|scraper|"
        r"copilot)s?(?: (?:agent|bot|model|tool|system)s?)? (?:(?:is|are) )?(?:currently |now )?"
        r"(?:reading|processing|summari[sz]ing|parsing|ingesting|handling|analy[sz]ing|indexing|scanning|crawling)"
        r" this\b",
        back=60,
    ),
    _signature(
        INSTRUCTION,
        _ADDRESSED,
        "ai;a.i.;llm;model;chatbot;assistant;agent;gpt",
        # "any model that reads this page": a model picked out as the reader of this very text
        r"(?:ai|a\.i\.|llm|model|chatbot|assistant|agent|gpt)s? (?:that|which|who) (?:reads?|process(?:es)?|summari[sz]es?|ingests?|parses?|sees?|"
        r"scans?|crawls?) (?:this|these) (?:page|text|document|file|content|message|e-?mail|article|post|site|"
        r"website|passage|section|note|review|data)s?\b",
    ),
    _signature(
        INSTRUCTION,
        _ADDRESSED,
        "ai;assistant;chatbot;llm;language model;large language model;gpt;chatgpt;copilot;model;automated;summari",
        # a model named at the start of a sentence (or after a greeting) and told what to do: "Assistant, please
        # ...", "Chatbot: ignore ..."; each look-behind has a fixed width, as Python requires
        r"(?:^|(?<=[.!?\n] )|(?<=[.!?\n\"'*(])|(?<=[.!?\n]  )|"
        + "|".join(
            f"(?<={w}[ ,])|(?<={w}, )"
            for w in ("hey", "hi", "hello", "dear", "ok", "okay", "attention", "there")
        )
        + r")(?:ai|ai assistant|ai agent|ai model|assistant|chatbot|llm|language model|large language model|gpt|"
        r"chatgpt|copilot|model|summari[sz]er|automated (?:readers?|assistants?|agents?|summari[sz]ers?|systems?))"
        r"[,:!]\s+"
        rf"(?:(?:please|now|also|then|just|first|instead|always|from now on),?\s+)?(?:{_IMPERATIVE}|"
        r"(?:when|while|before|after|as|once|if) (?:you\b|\w+ing\b))",
    ),
    _signature(
        INSTRUCTION,
        _ADDRESSED,
        "ai;llm;language model;large language model;chatbot;assistant;model;bot;crawler;summari;scraper;copilot;"
        "agent;gpt",
        # "should an assistant bot come across this text", "any AI that happens to read this"
        r"(?:ai|llm|language model|large language model|chatbot|assistant|model|bot|crawler|summari[sz]er|"
        r"scraper|copilot|agent|gpt)s?(?: (?:agent|bot|model|tool|system|assistant)s?)? (?:(?:is|are|should|will|"
        r"may|might|can|could|does|do|that|which|who) )?(?:currently |now |ever |also |happens? to |get to )?"
        r"(?:comes? across|coming across|encounter(?:s|ing)?|see(?:s|ing)?|read(?:s|ing)?|process(?:es|ing)?|"
        r"summari[sz](?:e|es|ing)|pars(?:e|es|ing)|ingest(?:s|ing)?|analy[sz](?:e|es|ing)|index(?:es|ing)?|"
        r"scan(?:s|ning)?|crawl(?:s|ing)?|handl(?:e|es|ing)) (?:this|these)\b(?! (?:data|sensor|signal|image|"
        r"images|frame|frames|input|inputs|value|values|dataset|file format|kind|type|sort)\b)",
    ),
    _signature(
        INSTRUCTION,
        _ADDRESSED,
        "paragraph is;text is;section is;note is;message is;part is;line is;sentence is;passage is;block is;"
        "comment is",
        r"(?:this|the following) (?:paragraph|text|section|note|message|part|line|sentence|passage|block|comment)"
        r" is (?:meant |written |intended |addressed |only )?(?:only |solely |just )?(?:for|to) (?:the |any |an? )?"
        rf"{_ADDRESSEE}s?\b(?! (?:sold|made|built|released|of|in|that|which)\b)",
        back=24,
    ),
    _signature(
        INSTRUCTION,
        _ROLE,
        "you are now;you are no longer;enter;switch to;activate;enable;from now on;act as if",
        r"\byou are (?:now|no longer) (?:dan\b|in (?:developer|god|admin|debug|jailbreak|unrestricted) mode|"
        r"(?:an? )?(?:unrestricted|unfiltered|uncensored|jailbroken)|free (?:from|of) )"
        r"|\b(?:enter|switch to|activate|enable) (?:developer|god|admin|debug|jailbreak|dan) mode\b"
        r"|\bfrom now on,? you (?:are|will|must|shall|should) (?:act|respond|reply|answer|only|always|ignore|obey)"
        r"|\bact as if you have no (?:rules|restrictions|guidelines|filters)",
    ),
    _signature(
        INSTRUCTION,
        "request to leak hidden instructions",
        "system prompt;system message;initial prompt;initial instructions;hidden prompt;hidden instructions;"
        "secret;you were given;you have been given;"
        "developer message;developer prompt;confidential;conversation so far;whole conversation;"
        "entire conversation;full conversation",
        _NOT
        + r"\b(?:reveal|print|output|repeat|show|disclose|leak|display|recite|dump|write out|spell out|tell me|"
        r"share|copy|quote|send)\s+"
        r"(?:me\s+)?(?:back\s+)?(?:your|the|all|any)\s+(?:\w+\s+){0,4}(?:system prompt|system message|"
        r"initial (?:prompt|instructions)|hidden (?:prompt|instructions)|secret (?:key|password|instructions|code)|"
        r"(?:instructions|rules|prompt|directions) you (?:were|have been) given|"
        r"developer (?:message|prompt)|confidential (?:instructions|prompt|rules)|conversation so far|"
        r"(?:whole|entire|full) conversation)",
        back=96,
        commanded=True,
    ),
    _signature(
        INSTRUCTION,
        "request to leak hidden instructions",
        "your instructions;your rules;your prompt;your guidelines;your directives;your initial;your original;"
        "your system;your hidden;your secret;your developer;your internal;your confidential;your full;your exact;"
        "your complete",
        # the model's own instructions as the object of a disclosure verb, or asked for outright
        rf"{_NOT}\b{_DISCLOSE}\s+(?:me\s+)?your (?:{_OWN} )?(?:instructions|rules|prompt|guidelines|"
        r"directives) (?:above|verbatim|word for word|exactly|in full)\b"
        rf"|{_NOT}\b{_DISCLOSE}\s+(?:me\s+)?your {_OWN} (?:instructions|rules|prompt|guidelines|directives)\b"
        rf"|\bwhat (?:are|were) your {_OWN} (?:instructions|rules|prompt|guidelines|directives)\b",
        back=40,
        commanded=True,
    ),
    _signature(
        INSTRUCTION,
        "request to leak hidden instructions",
        "what",
        # asked as a question: "what does your system message say?", "what instructions were you given?"
        r"what (?:does|do|did|is|are|was|were) (?:in )?your (?:\w+ )?(?:system prompt|system message|"
        rf"developer message|prompt|(?:{_OWN}) (?:instructions|rules|prompt|guidelines|directives))\b"
        r"|what (?:instructions|rules|guidelines|directives|prompt) (?:were|have) you (?:been )?(?:given|told|"
        r"configured|provided|set up|initiali[sz]ed|programmed)\b",
    ),
    _signature(
        INSTRUCTION,
        "concealment from the user",
        "the user",
        r"\b(?:do not|don't|never|without) (?:tell(?:ing)?|inform(?:ing)?|alert(?:ing)?|notify(?:ing)?|"
        r"let(?:ting)?|warn(?:ing)?|mention(?:ing)? (?:this|it) to) the user\b"
        r"|\bthe user (?:must|should) (?:not|never) (?:know|find out|learn|see) (?:about )?(?:this|these)",
        back=40,
    ),
    _signature(
        INSTRUCTION,
        _FORCED,
        "instead;rather;respond;reply;answer;begin your;start your",
        r"\b(?:instead|rather),? (?:respond|reply|answer|say|output|print|write) (?:only |just |exactly )?"
        r"(?:with |the (?:word|phrase|text|string|code) )"
        r"|\b(?:respond|reply|answer|begin your (?:answer|reply|response)|start your (?:answer|reply|response))"
        r" (?:only |exclusively )?with (?:only |just )?(?:the (?:word|phrase|text|string|code) |exactly )",
    ),
    _signature(
        INSTRUCTION,
        _FORCED,
        "answer;reply;response;output",
        r"\b(?:your|the) (?:only |whole |entire )?(?:answer|reply|response|output) (?:must|should|shall) "
        r"(?:be|contain|include) (?:only |exactly |just )?(?:the (?:word|phrase|text|string|code)|[\"'“])",
        back=16,
    ),
    _signature(
        INSTRUCTION,
        "override in another language",
        "ignor;игнорир;忽略;以前の指示;前の指示",
        r"\bignor(?:a|ar|e|ez|er)\s+(?:(?:todas|toutes|tutte)\s+)?(?:las|les|le|as)\s+"
        r"(?:instrucciones|instructions|istruzioni|instruções|indicaciones|consignes)\s+"
        r"(?:anteriores|previas|précédentes|antérieures|precedenti)"
        r"|\bignorier(?:e|en)?\s+(?:(?:alle|sämtliche)\s+)?(?:die\s+)?(?:vorherigen|bisherigen|obigen|früheren)\s+"
        r"(?:anweisungen|instruktionen|befehle|regeln)"
        r"|игнорируй(?:те)?\s+(?:все\s+)?(?:предыдущие|прошлые|вышеуказанные)\s+(?:инструкции|указания)"
        r"|忽略(?:之前|以上|前面|先前)的?(?:所有)?(?:指令|指示|说明)"
        r"|(?:以前|前)の指示を無視",
    ),
    _signature(
        ROLE_MARKER,
        "chat-template special token",
        "<|;[inst];[/inst];<<sys>>;<</sys>>;<start_of_turn>;<end_of_turn>;<bos>;<eos>",
        r"<\|(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|eom_id|start_header_id|"
        r"end_header_id|begin_of_text|end_of_text|end|tool|ipython|bos|eos)\|>"
        r"|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|<(?:bos|eos)>",
    ),
    _signature(
        ROLE_MARKER,
        "fake conversation turn",
        "system;developer;administrator;operator;admin;sysadmin;root;sys",
        # a line that opens as another speaker: "System:", "[system] ...", "(system) ...", "Operator note:",
        # "### System message", "[ADMIN MESSAGE]", or a header decorated on both sides: "=== system ===",
        # "-----BEGIN SYSTEM PROMPT-----"
        # the label is followed by the end of the line or by words of a command: "System: Windows 11, 16 GB" in a
        # spec sheet is not a turn, nor "root:x:0:0" in a password file
        r"(?m)^[ \t>#*\[(=\-<{|]*(?:system|developer|administrator|operator|admin|sysadmin|root|sys)"
        r"(?: ?(?:message|prompt|note|notice|override|instructions?|update|alert|directive|command))?"
        r"(?:(?:[\])*]*[ \t]*:|[\])*]*[\])][ \t])(?=[ \t*]*$|[ \t*]*(?=[a-z])[^\n.!?]{0,120}?\b"
        rf"(?:{_IMPERATIVE}|you|your|assistant|model|ai|user|please|must|will|should|instructions?|override|mode|"
        r"enabled|activated|active)\b)"
        r"|[\])*]*[ \t]*$)"
        r"|^[ \t]*[=\-#*<>\[({|]{2,}[ \t]*(?:(?:begin|end|start)[ \t]+)?(?:system|developer|administrator|"
        r"operator|admin)(?: \w+)?[ \t]*[=\-#*<>\])}|]{2,}[ \t]*$",
        back=24,
    ),
    _signature(
        ROLE_MARKER,
        "fake conversation turn",
        "from the system;from system;from the developer;from the admin;from the administrator;from the operator",
        # a heading that announces a message from the system: "### Instruction from the system"
        r"(?m)^[ \t]*(?:#{1,6}|\*\*|\[|\(|=+|-+)?[ \t]*(?:(?:a|an|new|urgent|important|updated|priority) )?"
        r"(?:message|instructions?|note|notice|directive|update|override|command|order)s? from (?:the )?"
        r"(?:system|developer|administrator|admin|operator)\b(?:[^\n]{0,20}$|[ \t]*[:\])])",
        back=48,
    ),
    _signature(
        ROLE_MARKER,
        "fake conversation turn",
        "assistant;ai;model;chatbot;gpt;chatgpt;bot",
        # a forged reply of the model agreeing to something: "Assistant: Sure, I will ..."
        # ("[Assistant]" on a line of its own, "Assistant: You're welcome! I will also ...")
        r"(?m)^[ \t>*\[]*(?:ai |the )?(?:assistant|ai|model|chatbot|gpt|chatgpt|bot)[ \t*\]]*(?::|\][ \t]*\n)[ \t*]*"
        r"(?:sure|understood|ok(?:ay)?|certainly|of course|absolutely|got it|alright|noted|will do|acknowledged|"
        r"as requested|i will|i'll|i am going to|i'm going to|i have been instructed"
        r"|[^\n]{0,40}?\bi (?:will|shall|am going to) (?:now |also |gladly |happily )?\w+"
        r"|[^\n]{0,40}?\bi'(?:ll|m going to) (?:now |also |gladly |happily )?\w+)\b",
        back=12,
    ),
    _signature(
        ROLE_MARKER,
        "fake conversation turn",
        "<system;</system;<assistant;</assistant;<instructions;</instructions",
        r"</?(?:system|assistant|system_prompt|instructions)>",
    ),
)

"""How a sample becomes the text a model reads, and how its tokens are counted.

Two styles: ``chat`` (the model's chat template around the user turn, then the answer prefix, as RULER puts it after
the template) and ``raw`` (prompt, a newline, the answer prefix). Counting is done by a :class:`TokenCounter`: the
target's own tokenizer where we have it. This module knows tokenizers, not engines or HTTP.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Protocol


class PromptStyle(StrEnum):
    """How the prompt is wrapped before it is tokenized."""

    CHAT = "chat"
    RAW = "raw"


class TokenCounter(Protocol):
    """Counts the input tokens of (prompt, answer prefix) exactly as the target will see them."""

    def __call__(self, prompt: str, answer_prefix: str) -> int: ...


def render_raw(prompt: str, answer_prefix: str) -> str:
    """The completion-style text: prompt, a newline, then the answer prefix."""
    return f"{prompt}\n{answer_prefix}" if answer_prefix else prompt


def render_chat(tokenizer: Any, prompt: str, answer_prefix: str) -> str:
    """The chat template around one user turn, with the assistant turn opened, then the answer prefix."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
    return text + answer_prefix


class TokenizerCounter:
    """Counts with a local tokenizer (``encode``, ``apply_chat_template``, ``has_chat_template``)."""

    def __init__(self, tokenizer: Any, style: PromptStyle = PromptStyle.CHAT) -> None:
        if style is PromptStyle.CHAT and not getattr(tokenizer, "has_chat_template", False):
            raise ValueError("the tokenizer has no chat template; use the raw prompt style")
        self.tokenizer = tokenizer
        self.style = style

    def render(self, prompt: str, answer_prefix: str) -> str:
        """The exact text the target gets."""
        if self.style is PromptStyle.CHAT:
            return render_chat(self.tokenizer, prompt, answer_prefix)
        return render_raw(prompt, answer_prefix)

    def encode(self, prompt: str, answer_prefix: str) -> list[int]:
        """Token ids of the rendered text (a chat template brings its own BOS; raw text gets the tokenizer's)."""
        text = self.render(prompt, answer_prefix)
        return self.tokenizer.encode(text, add_special_tokens=self.style is PromptStyle.RAW)

    def __call__(self, prompt: str, answer_prefix: str) -> int:
        return len(self.encode(prompt, answer_prefix))


class EstimateCounter:
    """A last resort when the target's tokenizer is unknown: about 4 characters per token (English)."""

    chars_per_token = 4.0

    def __call__(self, prompt: str, answer_prefix: str) -> int:
        return math.ceil((len(prompt) + len(answer_prefix) + 1) / self.chars_per_token) + 16

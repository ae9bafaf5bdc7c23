"""Text <-> token ids and chat templates, from a Hugging Face model directory.

``tokenizer.json`` is run by the ``tokenizers`` library (so encodings equal Hugging Face's fast tokenizers);
the chat template comes from ``tokenizer_config.json`` (or ``chat_template.jinja``) and is rendered with a sandboxed
jinja2 environment configured the way transformers renders it. This module knows text and ids, not models.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer as HFTokenizer

from ctxops.models.config import ModelConfigError, read_json_object


def _token_text(value: Any) -> str | None:
    """tokenizer_config.json stores special tokens as strings or as serialised AddedToken objects."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _compile_template(source: str, file: Path) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ModelConfigError(f"{file}: chat_template is not valid jinja2 ({exc})") from exc


class Tokenizer:
    """A model's tokenizer plus its special tokens and chat template."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        file = path / "tokenizer.json"
        if not file.is_file():
            raise ModelConfigError(
                f"{file}: not found; the model directory needs a tokenizer.json (fast tokenizer)"
            )
        try:
            self._tok = HFTokenizer.from_file(str(file))
        except Exception as exc:  # the tokenizers library raises a bare Exception on bad files
            raise ModelConfigError(f"{file}: cannot be read by the tokenizers library ({exc})") from exc
        self.path = path
        self.config = self._read_config(path / "tokenizer_config.json")
        self.bos_token = _token_text(self.config.get("bos_token"))
        self.eos_token = _token_text(self.config.get("eos_token"))
        self.chat_template_source, template_file = self._find_template(path)
        self._template = (
            _compile_template(self.chat_template_source, template_file) if self.chat_template_source else None
        )

    @staticmethod
    def _read_config(file: Path) -> dict[str, Any]:
        return read_json_object(file) if file.is_file() else {}

    def _find_template(self, path: Path) -> tuple[str | None, Path]:
        jinja_file = path / "chat_template.jinja"
        if jinja_file.is_file():
            return jinja_file.read_text(), jinja_file
        template = self.config.get("chat_template")
        config_file = path / "tokenizer_config.json"
        if isinstance(template, list):  # named templates: [{"name": "default", "template": "..."}]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        if template is not None and not isinstance(template, str):
            raise ModelConfigError(f"{config_file}: field 'chat_template' must be a string")
        return template, config_file

    # ---- ids ------------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @functools.cached_property
    def max_token_bytes(self) -> int:
        """The most UTF-8 bytes of text one token covers (vocabulary strings and their decoded text).

        A text of ``n`` bytes (after the normalizer) therefore holds at least ``n / max_token_bytes`` tokens: the
        server refuses a prompt certainly over the context window by its size, before spending seconds tokenizing
        it. Vocabulary strings are in the normalized, pre-tokenized alphabet (SentencePiece's ``▁``, byte-level
        BPE's one character per byte), so they bound what a token consumes for the families ctxops serves.
        """
        vocab = self._tok.get_vocab(with_added_tokens=True)
        longest = max((len(s.encode()) for s in vocab), default=1)
        decoded = max(
            (len(self._tok.decode([i], skip_special_tokens=False).encode()) for i in vocab.values()),
            default=1,
        )
        return max(longest, decoded, 1)

    def normalized_num_bytes(self, text: str) -> int:
        """UTF-8 length of ``text`` as the tokenizer's normalizer leaves it (linear time; no BPE)."""
        normalizer = self._tok.normalizer
        return len((normalizer.normalize_str(text) if normalizer is not None else text).encode())

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    # ---- chat -----------------------------------------------------------------------------------------------
    @property
    def has_chat_template(self) -> bool:
        return self._template is not None

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        **kwargs: Any,
    ) -> str:
        """Render messages to the prompt text the model was trained on.

        With ``continue_final_message`` (vLLM's option) the last message, an assistant turn, is left open so the
        model continues it: the text ends with that message's content, before its end-of-turn tokens. This is how
        an answer prefix ("The special magic number is") is sent through a chat API.
        """
        if continue_final_message:
            return self._continue_final(messages, add_generation_prompt, kwargs)
        return self._render(messages, add_generation_prompt, kwargs)

    def _continue_final(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool, kwargs: dict
    ) -> str:
        if add_generation_prompt:
            raise ValueError("continue_final_message and add_generation_prompt cannot both be true")
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError("continue_final_message needs the last message to be an assistant message")
        content = str(messages[-1].get("content") or "")
        text = self._render(messages, False, kwargs)
        end = text.rfind(content) if content else -1
        if end == -1 and content.strip():  # the template may have trimmed the content
            content = content.strip()
            end = text.rfind(content)
        if end == -1:
            raise ValueError(
                "the chat template does not reproduce the final message's content; cannot continue it"
            )
        return text[: end + len(content)]

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool, kwargs: dict) -> str:
        if self._template is None:
            raise ValueError(
                f"{self.path}: the model has no chat template (tokenizer_config.json 'chat_template' or "
                "chat_template.jinja); use a completion prompt instead"
            )
        special = {k: _token_text(v) for k, v in self.config.items() if k.endswith("_token")}
        context = {**special, **kwargs, "messages": messages, "add_generation_prompt": add_generation_prompt}
        try:
            return self._template.render(**context)
        except jinja2.TemplateError as exc:
            raise ValueError(f"chat template rejected the messages: {exc}") from exc

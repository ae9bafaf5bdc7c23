"""A Hugging Face ``tokenizer.json`` and ``tokenizer_config.json`` rebuilt from a GGUF file's ``tokenizer.*`` metadata.

A GGUF carries its vocabulary as lists (``tokenizer.ggml.tokens``, ``token_type``, ``scores``, ``merges``) plus the
name of the model family (``tokenizer.ggml.model``) and of the pre-tokenizer (``tokenizer.ggml.pre``, the regex
llama.cpp splits text with before BPE). This module turns those facts into a ``tokenizers.Tokenizer`` built with the
``tokenizers`` library, so the imported directory encodes text exactly as the GGUF defines it:

- ``gpt2``: byte-level BPE with the stored merges; the pre-tokenizer follows ``tokenizer.ggml.pre`` (see
  :data:`PRE_TOKENIZERS`; ``smollm`` and the StarCoder family split digits one by one before GPT-2's regex,
  ``llama-bpe`` is Llama 3's regex, ``qwen2`` Qwen's). A missing or ``default`` pre is read as GPT-2's regex.
- ``llama``: SentencePiece-style BPE with byte fallback (Llama 2, Mistral). The GGUF stores scores, not merges; the
  merges are derived from them the way a SentencePiece BPE model applies them: a pair of pieces merges when their
  concatenation is a piece, higher-scored results first.

Any other tokenizer family (``bert``, ``t5``, ``rwkv``, ...) or pre-tokenizer is refused with an error naming it and
what is supported. This module knows tokenizer metadata; it does not read files or know weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from ctxops.models.config import ModelConfigError

# Token types as GGUF stores them (tokenizer.ggml.token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPIECE_SPACE = "\u2581"  # SentencePiece's visible space

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)

# tokenizer.ggml.pre -> the splitting family it names (llama.cpp groups several names under one regex).
PRE_TOKENIZERS: dict[str, str] = {
    "default": "gpt2",
    "gpt-2": "gpt2",
    "gpt2": "gpt2",
    "mpt": "gpt2",
    "olmo": "gpt2",
    "jais": "gpt2",
    "smollm": "digits+gpt2",
    "starcoder": "digits+gpt2",
    "refact": "digits+gpt2",
    "command-r": "digits+gpt2",
    "codeshell": "digits+gpt2",
    "exaone": "digits+gpt2",
    "minerva-7b": "digits+gpt2",
    "llama3": "llama3",
    "llama-v3": "llama3",
    "llama-bpe": "llama3",
    "falcon3": "llama3",
    "qwen2": "qwen2",
    "deepseek-r1-qwen": "qwen2",
    "stablelm2": "qwen2",
}
TOKENIZER_MODELS = ("gpt2", "llama")


class GGUFTokenizerError(ModelConfigError):
    """The GGUF's tokenizer metadata is missing, inconsistent or of a family ctxops cannot rebuild."""


@dataclass(frozen=True, slots=True)
class GGUFVocab:
    """The ``tokenizer.*`` metadata of a GGUF file, as plain Python values."""

    model: str
    tokens: tuple[str, ...]
    token_types: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    merges: tuple[str, ...] = ()
    pre: str = "default"
    bos_id: int | None = None
    eos_id: int | None = None
    eot_id: int | None = None
    eom_id: int | None = None
    unk_id: int | None = None
    pad_id: int | None = None
    # None: the GGUF does not say; then gpt2 adds no BOS and llama does, as their Hugging Face originals
    add_bos: bool | None = None
    add_eos: bool = False
    add_space_prefix: bool = True  # llama (SentencePiece): prepend "▁" to the text
    chat_template: str | None = None
    named_chat_templates: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.model not in TOKENIZER_MODELS:
            raise GGUFTokenizerError(
                f"tokenizer.ggml.model {self.model!r} is not supported; supported: "
                f"{', '.join(TOKENIZER_MODELS)} (byte-level BPE and SentencePiece BPE)"
            )
        if not self.tokens:
            raise GGUFTokenizerError("tokenizer.ggml.tokens is empty; the GGUF carries no vocabulary")
        for name, values in (("token_type", self.token_types), ("scores", self.scores)):
            if values and len(values) != len(self.tokens):
                raise GGUFTokenizerError(
                    f"tokenizer.ggml.{name} has {len(values)} entries for {len(self.tokens)} tokens"
                )
        if self.model == "gpt2" and not self.merges:
            raise GGUFTokenizerError("tokenizer.ggml.model is gpt2 but tokenizer.ggml.merges is missing")
        if self.model == "gpt2" and self.pre not in PRE_TOKENIZERS:
            raise GGUFTokenizerError(
                f"tokenizer.ggml.pre {self.pre!r} is not supported; supported: {', '.join(sorted(PRE_TOKENIZERS))}"
            )
        for name in ("bos_id", "eos_id", "eot_id", "eom_id", "unk_id", "pad_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < len(self.tokens):
                raise GGUFTokenizerError(
                    f"tokenizer.ggml.{name.removesuffix('_id')}_token_id {value} is outside the vocabulary "
                    f"(0..{len(self.tokens) - 1})"
                )

    def type_of(self, token_id: int) -> int:
        return self.token_types[token_id] if self.token_types else NORMAL

    def token(self, token_id: int | None) -> str | None:
        return None if token_id is None else self.tokens[token_id]

    @property
    def adds_bos(self) -> bool:
        return self.add_bos if self.add_bos is not None else self.model == "llama"

    @property
    def eos_ids(self) -> list[int]:
        """Every id that ends a turn: eos, then end-of-turn and end-of-message when they differ."""
        ids: list[int] = []
        for value in (self.eos_id, self.eot_id, self.eom_id):
            if value is not None and value not in ids:
                ids.append(value)
        return ids


def build_tokenizer(vocab: GGUFVocab) -> Tokenizer:
    """The ``tokenizers.Tokenizer`` that encodes text the way the GGUF's vocabulary defines."""
    ids: dict[str, int] = {}
    for i, token in enumerate(vocab.tokens):
        ids.setdefault(token, i)  # a repeated string keeps its first id, as a lookup by text would find it
    tok = _byte_level(vocab, ids) if vocab.model == "gpt2" else _sentencepiece(vocab, ids)
    added = [
        AddedToken(token, special=vocab.type_of(i) == CONTROL, normalized=False)
        for i, token in enumerate(vocab.tokens)
        if vocab.type_of(i) in (CONTROL, USER_DEFINED) and ids[token] == i
    ]
    tok.add_special_tokens([t for t in added if t.special])
    tok.add_tokens([t for t in added if not t.special])
    tok.post_processor = _post_processor(vocab)
    return tok


def tokenizer_config(vocab: GGUFVocab, model_max_length: int) -> dict[str, Any]:
    """``tokenizer_config.json``: special tokens, BOS/EOS behaviour and the chat template."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": vocab.adds_bos,
        "add_eos_token": vocab.add_eos,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
    }
    for key, token_id in (
        ("bos_token", vocab.bos_id),
        ("eos_token", vocab.eos_id),
        ("unk_token", vocab.unk_id),
        ("pad_token", vocab.pad_id),
    ):
        if token_id is not None:
            config[key] = vocab.tokens[token_id]
    if vocab.named_chat_templates:
        templates = [{"name": name, "template": text} for name, text in vocab.named_chat_templates]
        if vocab.chat_template is not None:
            templates.insert(0, {"name": "default", "template": vocab.chat_template})
        config["chat_template"] = templates
    elif vocab.chat_template is not None:
        config["chat_template"] = vocab.chat_template
    return config


# ---- families -------------------------------------------------------------------------------------------------


def _byte_level(vocab: GGUFVocab, ids: dict[str, int]) -> Tokenizer:
    merges = []
    for line in vocab.merges:
        left, sep, right = line.partition(" ")
        if not sep:
            raise GGUFTokenizerError(
                f"tokenizer.ggml.merges holds {line!r}, not two tokens separated by a space"
            )
        merges.append((left, right))
    family = PRE_TOKENIZERS[vocab.pre]
    tok = Tokenizer(models.BPE(vocab=ids, merges=merges, ignore_merges=family == "llama3"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=family in ("gpt2", "digits+gpt2"))
    if family == "gpt2":
        tok.pre_tokenizer = byte_level
    elif family == "digits+gpt2":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        split = _LLAMA3_SPLIT if family == "llama3" else _QWEN2_SPLIT
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False), byte_level]
        )
        if family == "qwen2":
            tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    return tok


def _sentencepiece(vocab: GGUFVocab, ids: dict[str, int]) -> Tokenizer:
    if not vocab.scores:
        raise GGUFTokenizerError("tokenizer.ggml.model is llama but tokenizer.ggml.scores is missing")
    unk = vocab.token(vocab.unk_id)
    model = models.BPE(
        vocab=ids, merges=_merges_from_scores(vocab, ids), unk_token=unk, fuse_unk=True, byte_fallback=True
    )
    tok = Tokenizer(model)
    replace = normalizers.Replace(" ", SPIECE_SPACE)
    steps: list[Any] = [decoders.Replace(SPIECE_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if vocab.add_space_prefix:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE_SPACE), replace])
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    else:
        tok.normalizer = replace
    tok.decoder = decoders.Sequence(steps)
    return tok


def _merges_from_scores(vocab: GGUFVocab, ids: dict[str, int]) -> list[tuple[str, str]]:
    """Every split of a piece into two pieces, ordered by the merged piece's score (best first)."""
    mergeable = {NORMAL, USER_DEFINED, UNUSED}
    ranked: list[tuple[float, int, int, str, str]] = []
    for i, piece in enumerate(vocab.tokens):
        if vocab.type_of(i) not in mergeable or len(piece) < 2 or ids[piece] != i:
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                ranked.append((-vocab.scores[i], ids[left], ids[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _post_processor(vocab: GGUFVocab) -> Any:
    bos = vocab.token(vocab.bos_id) if vocab.adds_bos else None
    eos = vocab.token(vocab.eos_id) if vocab.add_eos else None
    if bos is None and eos is None:
        return processors.ByteLevel(trim_offsets=False) if vocab.model == "gpt2" else None
    single = " ".join(x for x in (bos, "$A", eos) if x)
    pair = " ".join(x for x in (bos, "$A", eos, bos, "$B:1", eos) if x)
    special = [(t, i) for t, i in ((bos, vocab.bos_id), (eos, vocab.eos_id)) if t is not None]
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)


def vocab_from_fields(fields: dict[str, Any]) -> GGUFVocab:
    """A :class:`GGUFVocab` from GGUF metadata already read into a ``{key: value}`` dict."""
    if "tokenizer.ggml.model" not in fields:
        raise GGUFTokenizerError(
            "the GGUF has no tokenizer (no tokenizer.ggml.model); ctxops needs the vocabulary to build "
            "tokenizer.json"
        )
    named = tuple(
        (name, fields[f"tokenizer.chat_template.{name}"])
        for name in fields.get("tokenizer.chat_templates") or ()
        if f"tokenizer.chat_template.{name}" in fields
    )
    return GGUFVocab(
        model=str(fields["tokenizer.ggml.model"]),
        tokens=tuple(fields.get("tokenizer.ggml.tokens") or ()),
        token_types=tuple(int(t) for t in fields.get("tokenizer.ggml.token_type") or ()),
        scores=tuple(float(s) for s in fields.get("tokenizer.ggml.scores") or ()),
        merges=tuple(fields.get("tokenizer.ggml.merges") or ()),
        pre=str(fields.get("tokenizer.ggml.pre", "default")),
        bos_id=fields.get("tokenizer.ggml.bos_token_id"),
        eos_id=fields.get("tokenizer.ggml.eos_token_id"),
        eot_id=fields.get("tokenizer.ggml.eot_token_id"),
        eom_id=fields.get("tokenizer.ggml.eom_token_id"),
        unk_id=fields.get("tokenizer.ggml.unknown_token_id"),
        pad_id=fields.get("tokenizer.ggml.padding_token_id"),
        add_bos=fields.get("tokenizer.ggml.add_bos_token"),
        add_eos=bool(fields.get("tokenizer.ggml.add_eos_token", False)),
        add_space_prefix=bool(fields.get("tokenizer.ggml.add_space_prefix", True)),
        chat_template=fields.get("tokenizer.chat_template"),
        named_chat_templates=named,
    )

"""Write a random-weight Llama-architecture model directory in Hugging Face's format.

Used where a real model is not available and its answers do not matter: the README's first command before
``builtin`` ships, benchmarks (same weights in ctxops and transformers) and tests. The tokenizer is a byte-level BPE
trained on a little built-in text, so any string encodes; the chat template is a plain ChatML one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from ctxops.models.config import ModelConfig
from ctxops.models.llama import LlamaForCausalLM

SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = (
    "The quick brown fox jumps over the lazy dog. A long document needs a model that reads all of it. "
    "Contracts, codebases and chat histories are long. The key value cache grows with every token. "
    "What is the special magic number mentioned in the text? The answer is 1234567. "
    "Paris is the capital of France. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. "
)


def train_tokenizer(directory: str | Path, vocab_size: int = 512) -> Tokenizer:
    """Train a byte-level BPE tokenizer and write tokenizer.json + tokenizer_config.json into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([_CORPUS] * 20, trainer=trainer)
    bos = SPECIAL_TOKENS[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    tok.save(str(directory / "tokenizer.json"))
    config = {
        "bos_token": bos,
        "eos_token": "<|im_end|>",
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 1 << 20,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return tok


def write_random_model(
    directory: str | Path,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 128,
    vocab_size: int = 512,
    max_position_embeddings: int = 4096,
    seed: int = 0,
) -> Path:
    """A complete, loadable random-weight ``LlamaForCausalLM`` directory (fp32 weights)."""
    directory = Path(directory)
    tok = train_tokenizer(directory, vocab_size)
    raw = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": num_attention_heads,
        "num_key_value_heads": num_key_value_heads,
        "head_dim": hidden_size // num_attention_heads,
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "bos_token_id": tok.token_to_id(SPECIAL_TOKENS[0]),
        "eos_token_id": tok.token_to_id("<|im_end|>"),
    }
    (directory / "config.json").write_text(json.dumps(raw, indent=2))
    eos = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|end_of_text|>")]
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(ModelConfig.from_dict(raw))
    for param in model.parameters():
        if param.dim() > 1:
            torch.nn.init.normal_(param, std=0.02)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("rotary")}
    save_file(state, str(directory / "model.safetensors"))
    return directory

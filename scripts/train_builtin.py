"""Train ctxops' ``builtin`` model from scratch on this machine's CPU: a tiny Llama for long-context retrieval.

Usage::

    .venv/bin/python scripts/train_builtin.py                       # full recipe -> src/ctxops/models/builtin
    .venv/bin/python scripts/train_builtin.py --steps 20 --tiny     # a smoke run (what the test does)

What it does, in one process with one optimizer:

1. trains a byte-level BPE tokenizer (single-digit tokens, ~2K vocabulary) on the eval generators' own text;
2. builds training documents from the same generators (``ctxops.evals``): NIAH in noise and prose haystacks with
   many needles (distractors at all depths) and several questions per document, each answer in the exact eval
   format (chat template, then the answer prefix, then the answer), plus exact samples of the eval tasks
   (``build_sample``) at training seeds >= 10,000,000 (evaluation uses seeds from 42; held-out checks 9,000,000+);
3. trains with loss on every answer token (other tokens weighted 0.1), a length curriculum from 128 tokens up,
   bf16 autocast, AdamW with warmup + cosine decay;
4. checkpoints every few minutes (``--work`` dir) and resumes from the last checkpoint when rerun; logs loss and
   held-out exact-match accuracy to ``--work/log.jsonl``;
5. writes a Hugging Face model directory (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
   generation_config.json) that ``ctxops.LLM`` loads like any other model.

This is a reproducible job, not part of ctxops' runtime: it imports ctxops.evals for its text, never the reverse.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TRAIN_SEED_BASE = 10_000_000  # documents; evaluation uses seeds 42.. (EvalConfig.seed + i)
HELDOUT_SEED_BASE = 9_000_000  # held-out checks during training
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
EVAL_TASKS = ("niah_single_1", "niah_single_2", "niah_multikey_1", "niah_multivalue", "niah_multiquery", "vt")


# ---------------------------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Recipe:
    seed: int = 1234
    vocab_size: int = 2048
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    rope_theta: float = 10000.0
    max_position_embeddings: int = 8192
    steps: int = 1150
    tokens_per_step: int = 8192
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup: int = 60
    weight_decay: float = 0.05
    context_weight: float = 0.1  # loss weight of non-answer tokens
    key_focus: float = 0.0  # fraction of dense documents that are key drills (many needles, many questions)
    init_from: str = ""  # start from these weights (a model directory) instead of a random init
    min_len: int = 64
    max_len: int = 1024
    hold: float = 0.1  # fraction of steps spent at min_len..2*min_len before the ramp
    ramp: float = 0.5  # fraction of steps over which the longest length grows from min_len to max_len
    eval_every: int = 200
    ckpt_minutes: float = 3.0
    minutes: float = 0.0  # > 0: the schedule runs on wall-clock progress and stops after this many minutes
    log_every: int = 1  # log (and sync with the device) every N steps

    def progress(self, step: int, seconds: float) -> float:
        """How far through the schedule (0..1): by steps, or by training seconds when ``minutes`` is set."""
        if self.minutes > 0:
            return min(1.0, seconds / (self.minutes * 60))
        return min(1.0, step / max(1, self.steps))

    @classmethod
    def gpu(cls) -> Recipe:
        """The GPU recipe (one H100/H200, ~16 data workers): a wider model, big batches, a wall-clock schedule."""
        return cls(
            hidden_size=256,
            num_heads=4,
            num_kv_heads=2,
            intermediate_size=768,
            steps=1_000_000,  # unused: ``minutes`` drives the schedule
            minutes=7.0,
            tokens_per_step=65536,
            lr=2e-3,
            warmup=200,
            max_len=2048,
            eval_every=2000,
            ckpt_minutes=2.0,
            log_every=25,
        )

    @classmethod
    def gpu_keys(cls) -> Recipe:
        """A GPU fine-tune of the GPU recipe's weights (``--init-from``) weighted to multi-key retrieval."""
        r = cls.gpu()
        r.minutes, r.lr, r.warmup, r.min_len, r.hold, r.ramp = 3.5, 1e-3, 100, 128, 0.0, 0.3
        r.key_focus = 0.6
        return r

    @classmethod
    def tiny(cls) -> Recipe:
        return cls(
            vocab_size=512,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            num_kv_heads=1,
            intermediate_size=64,
            tokens_per_step=1024,
            min_len=128,
            max_len=256,
            eval_every=10,
            warmup=5,
        )


# ---------------------------------------------------------------------------------------------------------------
# tokenizer
# ---------------------------------------------------------------------------------------------------------------
def tokenizer_corpus(rng: random.Random) -> list[str]:
    """Text from the eval generators: prose, noise, needles, questions, answers, variable chains, words."""
    from ctxops.evals import words
    from ctxops.evals.haystack import NOISE_SENTENCES
    from ctxops.evals.prose import prose_sentences
    from ctxops.evals.tasks import niah, variable_tracking

    out = [" ".join(prose_sentences(rng, 40)) for _ in range(300)]
    out += [" ".join(NOISE_SENTENCES)] * 50
    for _ in range(3000):
        key = words.key_word(rng)
        kind = rng.choice(["numbers", "uuids", "words"])
        out.append(f"One of the special magic {kind} for {key} is: {words.number_value(rng)}.")
        out.append(niah.TEMPLATE.format(kind=kind, context="", query=key))
        out.append(niah.ANSWER_PREFIX.format(kind=kind, query=key))
    for _ in range(300):
        out.append(" ".join(variable_tracking.chain(rng)[2]))
        value = str(rng.randint(10000, 99999))
        out.append(variable_tracking.TEMPLATE.format(context="", value=value))
        out.append(variable_tracking.ANSWER_PREFIX.format(value=value))
        out.append(" ".join(words.pseudo_word(rng) for _ in range(20)))
    out += [" ".join(words.ADJECTIVES), " ".join(words.NOUNS)] * 20
    return out


def build_tokenizer(directory: Path, vocab_size: int, seed: int) -> None:
    """Byte-level BPE with digits split one per token; writes tokenizer.json + tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tokenizer_corpus(random.Random(seed)), trainer=trainer)
    bos = SPECIAL_TOKENS[0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    config = {
        "bos_token": bos,
        "eos_token": "<|im_end|>",
        "pad_token": "<|end_of_text|>",
        "chat_template": CHAT_TEMPLATE,
        "model_max_length": 8192,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------
class DocMaker:
    """Training documents as (token ids, per-token loss weights) in the exact eval prompt format."""

    def __init__(self, model_dir: Path, context_weight: float, key_focus: float = 0.0) -> None:
        import ctxops.evals.tasks  # noqa: F401  (registers the tasks)
        from ctxops.evals.prompt import TokenizerCounter
        from ctxops.models.tokenizer import Tokenizer

        self.tok = Tokenizer(model_dir)
        self.counter = TokenizerCounter(self.tok)
        self.eos = self.tok.token_to_id("<|im_end|>")
        self.context_weight = context_weight
        self.key_focus = key_focus

    def encode_answer(self, answer: str) -> list[int]:
        return self.tok.encode(answer, add_special_tokens=False) + [self.eos]

    def _pack(self, pieces: list[tuple[list[int], bool]]) -> tuple[list[int], list[float]]:
        ids: list[int] = []
        weights: list[float] = []
        for chunk, supervised in pieces:
            ids += chunk
            weights += [1.0 if supervised else self.context_weight] * len(chunk)
        # weights[i] is the weight of predicting ids[i] from ids[:i]
        return ids, weights

    def eval_task_doc(self, task: str, length: int, seed: int, depth: float) -> tuple[list[int], list[float]]:
        """One exact eval-task sample (training seed) with its gold answer."""
        from ctxops.evals.tasks.base import build_sample

        sample = build_sample(task, length, depth, seed, self.counter)
        prompt = self.counter.encode(sample.prompt, sample.answer_prefix)
        return self._pack([(prompt, False), (self.encode_answer(format_answer(task, sample.answers)), True)])

    def dense_doc(
        self, rng: random.Random, length: int, drill: bool = False
    ) -> tuple[list[int], list[float]]:
        """Many needles at random depths, several questions in follow-up turns: dense supervision."""
        from ctxops.evals import words
        from ctxops.evals.haystack import NOISE_SENTENCES, insert_at_depths, join_sentences
        from ctxops.evals.prose import prose_sentences
        from ctxops.evals.tasks import niah

        noise = rng.random() < 0.4
        max_keys = max(2, min(24, length // 48))
        num_keys = rng.randint(1, max_keys)
        if drill:  # many keys in little filler: only matching the key finds the value
            num_keys = rng.randint(3, max(3, min(40, int(0.45 * length) // 22)))  # a needle: ~22 tokens
        multi = rng.random() < 0.2 and not drill
        if multi:  # up to 4 values per key: keep the needle count within the length
            num_keys = max(1, num_keys // 4)
        keys = words.distinct(words.key_word, rng, num_keys)
        values = {
            k: words.distinct(
                words.number_value, rng, rng.randint(2, max(2, min(4, length // 64))) if multi else 1
            )
            for k in keys
        }
        needles = [(k, v) for k in keys for v in values[k]]
        rng.shuffle(needles)
        placed = []
        for k, v in needles:
            r = rng.random()
            depth = 0.0 if r < 0.05 else 1.0 if r < 0.1 else rng.random()
            placed.append((depth, f"One of the special magic numbers for {k} is: {v}."))
        order = keys[:]
        rng.shuffle(order)
        num_q = 1 if rng.random() < 0.75 or len(order) < 2 else rng.randint(2, min(4, len(order)))
        first = order[:num_q]
        rest = order[num_q:][: rng.randint(0, 12 if drill else 8)]
        query = niah._query_text(first)
        prefix = niah.ANSWER_PREFIX.format(kind="numbers", query=query)

        follow: list[tuple[list[int], bool]] = []
        for k in rest:
            question = f"What are all the special magic numbers for {k} mentioned in the provided text?"
            turn = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
            turn += niah.ANSWER_PREFIX.format(kind="numbers", query=k)
            follow += [(self.tok.encode(turn, add_special_tokens=False), False)]
            follow += [(self.encode_answer(join_values(values[k])) + self.tok.encode("\n", False), True)]
        follow_len = sum(len(c) for c, _ in follow)
        answer = self.encode_answer(join_values([v for k in first for v in values[k]]))

        def render(n: int) -> list[int]:
            if noise:
                filler = [NOISE_SENTENCES[i % 5] for i in range(n)]
            else:
                filler = prose_sentences(random.Random(rng_seed), n)
            context = join_sentences(insert_at_depths(filler, placed))
            prompt = niah.TEMPLATE.format(kind="numbers", context=context, query=query)
            return self.counter.encode(prompt, prefix)

        rng_seed = rng.getrandbits(32)
        while follow and follow_len > 0.35 * length:  # keep follow-up questions to about a third
            follow_len -= len(follow[-1][0]) + len(follow[-2][0])
            follow = follow[:-2]
        budget = length - len(answer) - follow_len - 1
        n = max(1, budget // 8)
        ids = render(n)
        for _ in range(6):
            if len(ids) <= budget or n == 0:
                break
            n = max(0, int(n * budget / len(ids)) - 1)
            ids = render(n)
        pieces = [(ids, False), (answer, True)]
        if follow:
            pieces.append((self.tok.encode("\n", add_special_tokens=False), False))
            pieces += follow
        return self._pack(pieces)

    def doc(self, seed: int, length: int) -> tuple[list[int], list[float]]:
        rng = random.Random(seed)
        if rng.random() < 0.3:
            task = rng.choice(EVAL_TASKS)
            depth = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, rng.random()])
            try:
                ids, weights = self.eval_task_doc(task, length, seed, depth)
                if len(ids) <= length:
                    return ids, weights
            except ValueError:  # too short for this task (TaskError is a ValueError)
                pass
        drill = self.key_focus > 0 and rng.random() < self.key_focus
        return self.dense_doc(rng, length, drill)


def join_values(values: list[str]) -> str:
    return " " + (values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]) + "."


def format_answer(task: str, answers: tuple[str, ...]) -> str:
    if task == "vt":
        return " " + " ".join(answers)
    return join_values(list(answers))


def batch_lengths(recipe: Recipe, progress: float, rng: random.Random) -> int:
    """The curriculum: the longest length grows geometrically; each step samples a length up to it."""
    frac = min(1.0, max(0.0, progress - recipe.hold) / recipe.ramp)
    top = 2 * recipe.min_len * (recipe.max_len / (2 * recipe.min_len)) ** frac
    lo = recipe.min_len
    length = int(math.exp(rng.uniform(math.log(lo), math.log(max(lo, top)))))
    if rng.random() < 0.5:  # half the steps at the current frontier
        length = int(top)
    return max(lo, min(recipe.max_len, length))


def make_batch(
    maker: DocMaker, recipe: Recipe, step: int, progress: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, weights) of one step, each (docs, width); padding has weight 0. Seeds come from the step alone."""
    rng = random.Random(recipe.seed * 1_000_003 + step)
    length = batch_lengths(recipe, progress, rng)
    count = max(1, recipe.tokens_per_step // length)
    stride = max(
        1000, recipe.tokens_per_step // recipe.min_len
    )  # 1000 for the CPU recipe (as v1 was trained)
    docs = [maker.doc(TRAIN_SEED_BASE + step * stride + i, length) for i in range(count)]
    width = max(len(ids) for ids, _ in docs)
    ids = torch.full((count, width), maker.eos, dtype=torch.long)
    weights = torch.zeros((count, width))
    for i, (d, w) in enumerate(docs):
        ids[i, : len(d)] = torch.tensor(d)
        weights[i, : len(w)] = torch.tensor(w)
    return ids, weights


class BatchPool:
    """Makes batches ahead in worker processes (``workers`` > 0) or inline; batches come back in step order.

    A batch's length is fixed when it is asked for, from the schedule's progress at that moment, so with a
    wall-clock schedule the curriculum lags by at most ``depth`` batches.
    """

    def __init__(self, tok_dir: Path, recipe: Recipe, workers: int) -> None:
        self.recipe = recipe
        self.maker = DocMaker(tok_dir, recipe.context_weight, recipe.key_focus)
        self.pending: list = []
        self.pool = None
        if workers > 0:
            import multiprocessing as mp

            # fork before any CUDA call: the workers only build token ids
            self.pool = mp.get_context("fork").Pool(
                workers, _worker_init, (str(tok_dir), recipe.context_weight, recipe.key_focus)
            )
            self.depth = 2 * workers

    def get(self, step: int, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pool is None:
            return make_batch(self.maker, self.recipe, step, progress)
        while len(self.pending) < self.depth:
            ahead = step + len(self.pending)
            self.pending.append(self.pool.apply_async(_worker_batch, (self.recipe, ahead, progress)))
        result = self.pending.pop(0).get()
        return torch.from_numpy(result[0]).long(), torch.from_numpy(result[1]).float()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()


_WORKER_MAKER: DocMaker | None = None


def _worker_init(tok_dir: str, context_weight: float, key_focus: float) -> None:
    global _WORKER_MAKER
    torch.set_num_threads(1)
    _WORKER_MAKER = DocMaker(Path(tok_dir), context_weight, key_focus)


def _worker_batch(recipe: Recipe, step: int, progress: float):
    assert _WORKER_MAKER is not None
    ids, weights = make_batch(_WORKER_MAKER, recipe, step, progress)
    return ids.to(torch.int32).numpy(), weights.to(torch.float16).numpy()


# ---------------------------------------------------------------------------------------------------------------
# model: a plain Llama with Hugging Face parameter names
# ---------------------------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.heads, self.kv_heads = r.num_heads, r.num_kv_heads
        self.head_dim = r.hidden_size // r.num_heads
        self.q_proj = nn.Linear(r.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(r.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(r.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, r.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(r.hidden_size, r.intermediate_size, bias=False)
        self.up_proj = nn.Linear(r.hidden_size, r.intermediate_size, bias=False)
        self.down_proj = nn.Linear(r.intermediate_size, r.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, r: Recipe) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(r.hidden_size)
        self.self_attn = Attention(r)
        self.post_attention_layernorm = RMSNorm(r.hidden_size)
        self.mlp = MLP(r)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, r: Recipe, vocab: int) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, r.hidden_size)
        self.layers = nn.ModuleList(Layer(r) for _ in range(r.num_layers))
        self.norm = RMSNorm(r.hidden_size)


class Llama(nn.Module):
    def __init__(self, r: Recipe, vocab: int) -> None:
        super().__init__()
        self.recipe = r
        self.model = Backbone(r, vocab)
        self.lm_head = nn.Linear(r.hidden_size, vocab, bias=False)
        head_dim = r.hidden_size // r.num_heads
        inv = 1.0 / (r.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        self.register_buffer("inv_freq", inv.float(), persistent=False)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)
        for layer in self.model.layers:  # scaled init of residual outputs
            nn.init.normal_(layer.self_attn.o_proj.weight, std=0.02 / math.sqrt(2 * r.num_layers))
            nn.init.normal_(layer.mlp.down_proj.weight, std=0.02 / math.sqrt(2 * r.num_layers))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=ids.device), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        x = self.model.embed_tokens(ids)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))


def weighted_loss(
    model: Llama, ids: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted loss, answer-token loss) for next-token prediction."""
    with torch.autocast(ids.device.type, dtype=torch.bfloat16):
        logits = model(ids[:, :-1])
    nll = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
    w = weights[:, 1:]
    loss = (nll * w).sum() / w.sum().clamp(min=1)
    ans = (w == 1.0).float()  # no data-dependent branch: no device sync
    return loss, ((nll * ans).sum() / ans.sum().clamp(min=1)).detach()


# ---------------------------------------------------------------------------------------------------------------
# held-out accuracy: greedy exact match, measured by teacher forcing (argmax at every answer token = greedy output)
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def heldout_accuracy(model: Llama, maker: DocMaker, tasks: tuple[str, ...], length: int, n: int) -> dict:
    from ctxops.evals.tasks.base import build_sample

    model.eval()
    device = next(model.parameters()).device
    out = {}
    for task in tasks:
        hits = 0
        for i in range(n):
            depth = (0.0, 0.25, 0.5, 0.75, 1.0)[i % 5]
            sample = build_sample(task, length, depth, HELDOUT_SEED_BASE + i, maker.counter)
            prompt = maker.counter.encode(sample.prompt, sample.answer_prefix)
            answer = maker.encode_answer(format_answer(task, sample.answers))
            ids = torch.tensor([prompt + answer], device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(ids[:, :-1])
            pred = logits[0, len(prompt) - 1 :].argmax(-1)
            hits += int(torch.equal(pred, ids[0, len(prompt) :]))
        out[f"{task}@{length}"] = round(hits / n, 3)
    model.train()
    return out


def load_weights(model: Llama, directory: Path) -> None:
    """Weights from a model directory this script exported (one safetensors file or a sharded index)."""
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else []
    state: dict[str, torch.Tensor] = {}
    for name in files or ["model.safetensors"]:
        state.update(load_file(str(directory / name)))
    model.load_state_dict(state)


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------
def export(model: Llama, tok_dir: Path, out: Path, vocab: int, shard_mb: float = 0.0) -> None:
    """A Hugging Face model directory; ``shard_mb`` > 0 splits the weights into shards of at most that size."""
    from safetensors.torch import save_file

    r = model.recipe
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if tok_dir.resolve() != out.resolve():
            (out / name).write_bytes((tok_dir / name).read_bytes())
    tok = json.loads((tok_dir / "tokenizer.json").read_text())
    specials = {t["content"]: t["id"] for t in tok["added_tokens"]}
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab,
        "hidden_size": r.hidden_size,
        "intermediate_size": r.intermediate_size,
        "num_hidden_layers": r.num_layers,
        "num_attention_heads": r.num_heads,
        "num_key_value_heads": r.num_kv_heads,
        "head_dim": r.hidden_size // r.num_heads,
        "hidden_act": "silu",
        "max_position_embeddings": r.max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "rope_theta": r.rope_theta,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
        "bos_token_id": specials["<|begin_of_text|>"],
        "eos_token_id": specials["<|im_end|>"],
        "pad_token_id": specials["<|end_of_text|>"],
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    generation = {"eos_token_id": [specials["<|im_end|>"], specials["<|end_of_text|>"]], "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    total = sum(v.numel() * v.element_size() for v in state.values())
    if shard_mb <= 0 or total <= shard_mb * 2**20:
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
        return
    shards: list[dict[str, torch.Tensor]] = [{}]
    for name, tensor in state.items():
        size = sum(v.numel() * v.element_size() for v in shards[-1].values())
        if shards[-1] and size + tensor.numel() * tensor.element_size() > shard_mb * 2**20:
            shards.append({})
        shards[-1][name] = tensor
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# training loop
# ---------------------------------------------------------------------------------------------------------------
def lr_at(r: Recipe, step: int, progress: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``min_lr_ratio`` over the schedule's progress."""
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    frac = progress if r.minutes > 0 else (step - r.warmup) / max(1, r.steps - r.warmup)
    return r.lr * (r.min_lr_ratio + (1 - r.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train(
    recipe: Recipe,
    work: Path,
    out: Path,
    quiet: bool = False,
    stop_at: int | None = None,
    device: str = "cpu",
    workers: int = 0,
    shard_mb: float = 0.0,
    final_eval: int = 0,
) -> dict:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    work.mkdir(parents=True, exist_ok=True)
    tok_dir = work / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        build_tokenizer(tok_dir, recipe.vocab_size, recipe.seed)
    batches = BatchPool(tok_dir, recipe, workers)  # before any CUDA call (the workers fork)
    maker = batches.maker
    vocab = maker.tok.vocab_size

    torch.manual_seed(recipe.seed)
    model = Llama(recipe, vocab)
    if recipe.init_from:
        load_weights(model, Path(recipe.init_from))
    model = model.to(device)
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
        betas=(0.9, 0.95),
        fused=device.startswith("cuda"),
    )
    ckpt = work / "checkpoint.pt"
    state = {"step": 0, "tokens": 0, "seconds": 0.0}
    if ckpt.is_file():
        saved = torch.load(ckpt, weights_only=False, map_location=device)
        if saved["recipe"] != asdict(recipe):
            raise SystemExit(f"{ckpt} was written by a different recipe; remove {work} to start over")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"resumed from {ckpt} at step {state['step']}")

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {
                "recipe": asdict(recipe),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "state": state,
            },
            tmp,
        )
        os.replace(tmp, ckpt)

    log = (work / "log.jsonl").open("a")
    n_params = sum(p.numel() for p in model.parameters())
    if state["step"] == 0:
        start = {"event": "start", "params": n_params, "device": device, "workers": workers}
        log.write(json.dumps({**start, "recipe": asdict(recipe)}) + "\n")
    model.train()
    last_save = last_export = time.time()
    ema = None
    window: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # device tensors, read every log_every
    window_start = time.time()
    window_tokens = 0
    columns = [
        TextColumn("[bold]builtin"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    ]

    def done() -> bool:
        if stop_at is not None and state["step"] >= stop_at:
            return True
        return recipe.progress(state["step"], state["seconds"]) >= 1.0

    with Progress(*columns, disable=quiet) as bar:
        task_id = bar.add_task(
            "train", total=1.0, completed=recipe.progress(state["step"], state["seconds"]), info=""
        )
        while not done():
            step = state["step"]
            progress = recipe.progress(step, state["seconds"])
            t0 = time.time()
            ids, weights = batches.get(step, progress)
            t_data = time.time() - t0
            ids = ids.to(device, non_blocking=True)
            weights = weights.to(device, non_blocking=True)
            for group in opt.param_groups:
                group["lr"] = lr_at(recipe, step, progress)
            loss, ans_loss = weighted_loss(model, ids, weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            window.append((loss.detach(), ans_loss, grad_norm.detach()))
            window_tokens += ids.numel()
            state["step"] += 1
            state["tokens"] += ids.numel()
            evaluate = state["step"] % recipe.eval_every == 0
            if len(window) < recipe.log_every and not evaluate and not done_soon(recipe, state, t0):
                state["seconds"] += time.time() - t0
                continue
            values = torch.stack([torch.stack(w) for w in window]).float().cpu()  # one device sync per window
            now = time.time()
            state["seconds"] += now - t0
            dt = now - window_start
            for _loss_v, ans_v, _ in values.tolist():
                ema = ans_v if ema is None else 0.95 * ema + 0.05 * ans_v
            record = {
                "step": state["step"],
                "loss": round(values[:, 0].mean().item(), 4),
                "answer_loss": round(values[:, 1].mean().item(), 4),
                "len": ids.shape[1],
                "batch": ids.shape[0],
                "lr": round(lr_at(recipe, step, progress), 6),
                "grad_norm": round(values[:, 2].mean().item(), 3),
                "tok_s": round(window_tokens / max(dt, 1e-9)),
                "data_s": round(t_data, 3),
                "tokens": state["tokens"],
                "seconds": round(state["seconds"], 1),
                "progress": round(progress, 4),
            }
            window, window_tokens, window_start = [], 0, now
            finished = done()
            if evaluate or finished:
                top = max(512, int(min(recipe.max_len, ids.shape[1])))
                acc = heldout_accuracy(model, maker, ("niah_single_2", "niah_multikey_1"), top, 10)
                record["heldout"] = acc
                bar.console.print(f"step {state['step']}: answer loss {ema:.3f}, held-out {acc}")
                window_start = time.time()  # evaluation time is not training time
            log.write(json.dumps(record) + "\n")
            log.flush()
            info = f"step {state['step']} ans_loss {ema:.3f} len {ids.shape[1]} {record['tok_s']} tok/s"
            bar.update(task_id, completed=recipe.progress(state["step"], state["seconds"]), info=info)
            if quiet and recipe.log_every > 1:
                print(info, flush=True)
            if time.time() - last_save > recipe.ckpt_minutes * 60 or finished:
                save()
                last_save = time.time()
            if recipe.minutes > 0 and time.time() - last_export > recipe.ckpt_minutes * 60:
                export(model, tok_dir, out, vocab, shard_mb)  # a usable model even if the run is cut short
                last_export = time.time()
    batches.close()
    export(model, tok_dir, out, vocab, shard_mb)
    if final_eval:
        lengths = [n for n in (256, 512, 1024, 2048, 4096) if n <= 2 * recipe.max_len]
        table = {}
        for length in lengths:
            for task in EVAL_TASKS:
                try:
                    table.update(heldout_accuracy(model, maker, (task,), length, final_eval))
                except ValueError:  # too short for this task
                    continue
            print(f"final held-out @{length}: {table}", flush=True)
        log.write(json.dumps({"event": "final_heldout", "samples": final_eval, "accuracy": table}) + "\n")
    summary = {"event": "done", "params": n_params, **state, "answer_loss_ema": ema, "out": str(out)}
    log.write(json.dumps(summary) + "\n")
    log.close()
    return summary


def done_soon(recipe: Recipe, state: dict, t0: float) -> bool:
    """True when the wall-clock schedule ends with this step (so the last window is logged)."""
    return recipe.progress(state["step"], state["seconds"] + time.time() - t0) >= 1.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "src/ctxops/models/builtin")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/train_builtin")
    parser.add_argument("--steps", type=int, help="override the recipe's step count")
    parser.add_argument(
        "--recipe",
        choices=("cpu", "gpu", "gpu-keys", "tiny"),
        default="cpu",
        help="cpu: the 2-core recipe; gpu: the wider wall-clock recipe for one GPU; tiny: smoke tests",
    )
    parser.add_argument("--tiny", action="store_true", help="same as --recipe tiny")
    parser.add_argument("--init-from", type=Path, help="start from this model directory's weights")
    parser.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    parser.add_argument(
        "--workers", type=int, default=0, help="processes that build batches ahead (0: inline)"
    )
    parser.add_argument(
        "--minutes", type=float, help="run the schedule on wall-clock time for this many minutes"
    )
    parser.add_argument(
        "--shard-mb", type=float, default=0.0, help="split exported weights into shards (MiB)"
    )
    parser.add_argument(
        "--final-eval",
        type=int,
        default=0,
        metavar="N",
        help="after training, held-out exact match of every eval task at 256..4K tokens, N samples each",
    )
    parser.add_argument(
        "--stop-at",
        type=int,
        help="stop (and export) at this step, keeping the recipe's schedule; rerun without it to go on",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared 2-core machine a second thread stalls on a busy core; 2 on an idle one)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipes = {"cpu": Recipe, "gpu": Recipe.gpu, "gpu-keys": Recipe.gpu_keys, "tiny": Recipe.tiny}
    recipe = recipes["tiny" if args.tiny else args.recipe]()
    if args.init_from:
        if not (args.init_from / "config.json").is_file():
            parser.error(
                f"--init-from {args.init_from}: no config.json there (a model directory is expected)"
            )
        recipe.init_from = str(args.init_from)
    if args.steps:
        recipe.steps = args.steps
    if args.minutes is not None:
        if args.minutes <= 0:
            parser.error("--minutes must be > 0")
        recipe.minutes = args.minutes
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    summary = train(
        recipe,
        args.work,
        args.out,
        quiet=args.quiet,
        stop_at=args.stop_at,
        device=args.device,
        workers=args.workers,
        shard_mb=args.shard_mb,
        final_eval=args.final_eval,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

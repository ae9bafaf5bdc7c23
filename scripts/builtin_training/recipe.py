"""The builtin model's training recipes (CPU, GPU, the multi-key fine-tune, smoke) and the seed ranges they use.

It knows hyper-parameters and schedules, not data or tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    compact: float = 0.0  # fraction of documents that are compact drills (needles back to back)
    key_aux: float = 0.0  # loss weight of the training-only key probe (model.KeyProbe); 0: off
    key_aux_layer: int = 1  # the probe reads the hidden state after this layer (1-based)
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
    def cpu_keys_drill(cls) -> Recipe:
        """Stage 1 of the 2-core key-matching fine-tune of the GPU recipe's weights (``--init-from``): compact
        drills only, 256 tokens, with the key probe (``key_aux``) on the value and answer tokens."""
        r = cls.gpu()
        r.minutes, r.tokens_per_step, r.lr, r.warmup = 6.0, 4096, 1e-3, 50
        r.min_len, r.max_len, r.hold, r.ramp = 256, 256, 0.0, 0.1
        r.compact, r.key_aux, r.key_aux_layer = 1.0, 0.1, 1
        r.eval_every, r.ckpt_minutes, r.log_every = 200, 3.0, 10
        return r

    @classmethod
    def cpu_keys(cls) -> Recipe:
        """Stage 2 (``--init-from`` stage 1's output): the full eval-format mix with key drills, a fifth compact
        drills, and the key probe, lengths 128..2K, on a wall-clock schedule."""
        r = cls.gpu()
        r.minutes, r.tokens_per_step, r.lr, r.warmup = 20.0, 8192, 5e-4, 50
        r.min_len, r.max_len, r.hold, r.ramp = 128, 2048, 0.0, 0.3
        r.compact, r.key_focus, r.key_aux, r.key_aux_layer = 0.2, 0.5, 0.1, 1
        r.eval_every, r.ckpt_minutes, r.log_every = 250, 3.0, 10
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

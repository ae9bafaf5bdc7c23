"""Logit distillation: a student learns the teacher's next-token distributions on eval-task items and the user's text.

The loss per token is ``alpha x T^2 x KL(teacher_T || student_T) + (1 - alpha) x CE(student, next token)``, the
softened distributions at temperature ``T`` (Hinton et al. 2015 scale the soft term by T^2 so its gradients keep
their size as T grows). One sequence a step, items from :class:`~ctxops.compress.corpus.Corpus` (item ``i`` for
step ``i``), until ``tokens`` tokens were seen. The schedule, optimizer and checkpoint come from
:mod:`ctxops.compress.trainer`; a checkpoint every ``checkpoint_every`` steps is resumed by rerunning the command.

The student starts from its own weights when its directory has them (a pruned model: pruning recovery), else from
the teacher's tensors of the same name and shape (embeddings, norms, LM head, the first layers) with the rest
initialised at random. It must read text exactly as the teacher does: same vocabulary size, same special token ids.

This module knows losses, the loop and the student's files; it does not know the eval or the CLI.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ctxops.compress.corpus import DEFAULT_TASKS, Corpus
from ctxops.compress.dense import dense_forward, load_model
from ctxops.compress.model_dir import read_config, write_model_dir
from ctxops.compress.trainer import Checkpoint, adamw, warmup_cosine
from ctxops.evals.tasks import TaskError
from ctxops.models.config import ModelConfig, ModelConfigError
from ctxops.models.llama import LlamaForCausalLM
from ctxops.models.loader import load_weights, resolve_model_path, weight_files
from ctxops.models.tokenizer import Tokenizer

DATA_SEED = (
    10_000  # distillation items: clear of the eval's seeds (42 onward) and calibration's (1000 onward)
)
_SPECIAL_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")


class DistillError(ValueError):
    """Settings out of range or a student that cannot learn from this teacher."""


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run."""

    teacher: str  # `builtin` or a model directory
    student: str  # a config.json, or a model directory (its weights, if any, are the starting point)
    out: str  # where the student model directory goes (checkpoint and log beside it, in out/train/)
    tokens: int = 1_000_000  # stop after this many training tokens
    steps: int | None = None  # or after this many steps, whichever comes first
    lengths: tuple[int, ...] = (512, 1024)  # task item lengths, cycled
    tasks: tuple[str, ...] = DEFAULT_TASKS
    text_files: tuple[str, ...] = ()  # the user's text, every other item
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft (KL) term; 1 - alpha goes to the hard loss
    lr: float = 1e-3
    warmup: int = 20  # steps
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    checkpoint_every: int = 50  # steps
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tokens < 1 or (self.steps is not None and self.steps < 1):
            raise DistillError(f"--tokens and steps must be at least 1, got {self.tokens} and {self.steps}")
        if not self.temperature > 0 or not math.isfinite(self.temperature):
            raise DistillError(f"--temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise DistillError(f"--alpha (the soft loss's weight) must be in [0, 1], got {self.alpha}")
        if not self.lr > 0:
            raise DistillError(f"--lr must be positive, got {self.lr}")
        if self.checkpoint_every < 1 or self.warmup < 0:
            raise DistillError("--checkpoint-every must be >= 1 and the warmup >= 0")
        if not self.lengths or min(self.lengths) < 64:
            raise DistillError(f"lengths must be at least 64 tokens, got {self.lengths}")


def _student_config(student: str) -> tuple[dict, Path]:
    """The student's raw config.json and its directory."""
    path = Path(student)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise DistillError(
            f"--student {student}: no config.json there; give a config file or a model directory"
        )
    raw = json.loads(file.read_text())
    return raw, file.parent


def check_compatible(teacher: ModelConfig, teacher_path: Path, raw: dict, student_dir: Path) -> ModelConfig:
    """Raise :class:`DistillError` unless the student reads the teacher's tokens; return its parsed config."""
    try:
        student = ModelConfig.from_dict(raw, str(student_dir / "config.json"))
    except ModelConfigError as exc:
        raise DistillError(f"--student: {exc}") from exc
    if student.vocab_size != teacher.vocab_size:
        raise DistillError(
            f"the student's vocab_size ({student.vocab_size}) differs from the teacher's ({teacher.vocab_size}): "
            "distillation matches distributions over the teacher's tokens; set vocab_size to "
            f"{teacher.vocab_size} in the student's config.json"
        )
    teacher_raw = read_config(teacher_path)
    for key in _SPECIAL_IDS:
        if key in raw and key in teacher_raw and raw[key] != teacher_raw[key]:
            raise DistillError(
                f"the student's {key} ({raw[key]}) differs from the teacher's ({teacher_raw[key]}); the student "
                "uses the teacher's tokenizer, so its special token ids must be the teacher's"
            )
    if (student_dir / "tokenizer.json").is_file():
        ours, theirs = Tokenizer(student_dir), Tokenizer(teacher_path)
        if ours._tok.get_vocab() != theirs._tok.get_vocab():
            raise DistillError(
                f"{student_dir / 'tokenizer.json'} is not the teacher's tokenizer (their vocabularies differ); "
                "the student must read text as the teacher does: remove it (the teacher's is copied) or use the "
                "teacher's"
            )
    return student


def build_student(config: ModelConfig, student_dir: Path, teacher: LlamaForCausalLM, seed: int):
    """The student in fp32: its own weights if it has some, else the teacher's same-shaped tensors + random init."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    if any(student_dir.glob("*.safetensors")) and weight_files(student_dir):
        load_weights(model, student_dir, torch.float32)
        return model, "student weights"
    theirs = teacher.state_dict()
    copied = 0
    for name, param in model.named_parameters():
        if name in theirs and theirs[name].shape == param.shape:
            param.data.copy_(theirs[name])
            copied += 1
        elif param.dim() > 1:
            torch.nn.init.normal_(param, std=0.02)
    return model, f"{copied} teacher tensors, the rest random"


def distill_loss(student_logits, teacher_logits, targets, temperature: float, alpha: float):
    """(total, soft, hard): per-token means over one sequence's (T, vocab) logits."""
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    ) * (t * t)
    hard = F.cross_entropy(student_logits, targets)
    return alpha * soft + (1 - alpha) * hard, soft.detach(), hard.detach()


def distill(
    config: DistillConfig,
    progress: Callable[[float, str], None] | None = None,
    max_steps: int | None = None,
) -> dict[str, Any]:
    """Train the student; write it to ``config.out``; return the final state. Rerun to resume.

    ``max_steps``: stop this call after that many steps (the checkpoint holds them; a rerun goes on).
    """
    teacher, teacher_path = load_model(config.teacher)
    teacher.requires_grad_(False)
    raw, student_dir = _student_config(config.student)
    student_config = check_compatible(teacher.config, teacher_path, raw, student_dir)
    out = Path(config.out)
    work = out / "train"
    work.mkdir(parents=True, exist_ok=True)
    student, start = build_student(student_config, student_dir, teacher, config.seed)
    student.train()
    opt = adamw(student.parameters(), config.lr, config.weight_decay)
    identity = {k: v for k, v in asdict(config).items() if k != "out"}
    identity["teacher"] = str(resolve_model_path(config.teacher))
    checkpoint = Checkpoint(work / "checkpoint.pt", identity)
    state = {"step": 0, "tokens": 0, "seconds": 0.0}
    saved = checkpoint.load()
    if saved is not None:
        student.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
    corpus = Corpus(
        Tokenizer(teacher_path), config.tasks, config.lengths, config.text_files, DATA_SEED + config.seed
    )
    try:  # every task fits every length: fail now, not hours in
        for i in range(len(corpus.combos)):
            corpus.item(2 * i if corpus.texts else i)
    except TaskError as exc:
        raise DistillError(f"{exc} (distillation lengths: {', '.join(map(str, config.lengths))})") from exc
    log = (work / "log.jsonl").open("a")
    if state["step"] == 0:
        log.write(json.dumps({"event": "start", "start": start, "identity": identity}) + "\n")
    first_step = state["step"]

    def progress_of() -> float:  # 0 -> 1 over the budget, tokens or steps, whichever ends first
        return max(state["tokens"] / config.tokens, state["step"] / config.steps if config.steps else 0.0)

    while progress_of() < 1.0 and (max_steps is None or state["step"] - first_step < max_steps):
        t0 = time.perf_counter()
        ids = torch.tensor(corpus.item(state["step"]), dtype=torch.long)
        with torch.no_grad():
            teacher_logits = dense_forward(teacher, ids[:-1]).logits
        logits = dense_forward(student, ids[:-1]).logits
        loss, soft, hard = distill_loss(logits, teacher_logits, ids[1:], config.temperature, config.alpha)
        lr = warmup_cosine(config.lr, state["step"], config.warmup, progress_of(), config.min_lr_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        state["step"] += 1
        state["tokens"] += len(ids) - 1
        state["seconds"] += time.perf_counter() - t0
        record = {"step": state["step"], "tokens": state["tokens"], "loss": round(float(loss.detach()), 4),
                  "soft": round(float(soft), 4), "hard": round(float(hard), 4), "lr": round(lr, 6)}  # fmt: skip
        log.write(json.dumps(record) + "\n")
        stopping = progress_of() >= 1.0 or state["step"] - first_step == max_steps
        if state["step"] % config.checkpoint_every == 0 or stopping:
            checkpoint.save({"model": student.state_dict(), "optimizer": opt.state_dict(), "state": state})
            log.flush()
        if progress is not None:
            info = f"step {state['step']} soft {record['soft']:.3f} hard {record['hard']:.3f}"
            progress(min(progress_of(), 1.0), info)
    log.close()
    if progress_of() < 1.0:  # stopped early on purpose: the checkpoint is the result so far
        return {**state, "start": start, "finished": False}
    weights = {k: v.detach() for k, v in student.state_dict().items()}
    if student_config.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    write_model_dir(out, raw, weights, teacher_path)
    return {
        **state,
        "start": start,
        "finished": True,
        "parameters": sum(p.numel() for p in student.parameters()),
    }

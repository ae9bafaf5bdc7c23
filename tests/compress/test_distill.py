"""Distillation: a few steps, an interrupted run that resumes where it stopped, and students it must refuse."""

import json

import pytest
import torch

from ctxops.compress.dense import load_model
from ctxops.compress.distill import DistillConfig, DistillError, distill, distill_loss
from ctxops.compress.trainer import CheckpointError
from ctxops.models.loader import resolve_model_path


def _student(tmp_path, **changes) -> str:
    raw = json.loads((resolve_model_path("builtin") / "config.json").read_text())
    raw.update({"num_hidden_layers": 1, "intermediate_size": 64, **changes})
    file = tmp_path / "student" / "config.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(raw))
    return str(file)


def test_loss_is_zero_when_the_student_is_the_teacher_softly():
    logits = torch.randn(5, 11)
    targets = logits.argmax(-1)
    total, soft, hard = distill_loss(logits, logits, targets, 2.0, 1.0)
    assert float(soft) == pytest.approx(0.0, abs=1e-6) and float(total) == pytest.approx(0.0, abs=1e-6)
    assert float(hard) > 0


def test_distill_stops_resumes_and_writes_a_model(tmp_path):
    config = DistillConfig(
        "builtin",
        _student(tmp_path),
        str(tmp_path / "out"),
        tokens=10**9,
        steps=3,  # the step budget ends the run (pruning recovery counts steps)
        lengths=(256,),
        tasks=("niah_single_1",),
        checkpoint_every=1,
    )
    first = distill(config, max_steps=1)  # as if the process died after one step
    assert first["finished"] is False and first["step"] == 1
    assert not (tmp_path / "out" / "model.safetensors").exists()
    done = distill(config)
    assert done["finished"] and done["step"] == 3
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "out/train/log.jsonl").read_text().splitlines()[1:]
    ]
    assert steps == list(range(1, done["step"] + 1))  # no step redone, none skipped
    model, _ = load_model(
        str(tmp_path / "out")
    )  # a model directory like any other (transformers: test_prune)
    assert model.config.num_hidden_layers == 1 and model.config.intermediate_size == 64
    with pytest.raises(CheckpointError, match="lr differ"):
        distill(DistillConfig(**{**config.__dict__, "lr": 0.1}))


def test_students_that_cannot_read_the_teachers_tokens(tmp_path):
    with pytest.raises(DistillError, match="vocab_size \\(4096\\) differs from the teacher's \\(2048\\)"):
        distill(DistillConfig("builtin", _student(tmp_path, vocab_size=4096), str(tmp_path / "a"), tokens=10))
    with pytest.raises(DistillError, match="eos_token_id"):
        distill(DistillConfig("builtin", _student(tmp_path, eos_token_id=7), str(tmp_path / "b"), tokens=10))
    with pytest.raises(DistillError, match="must be in \\[0, 1\\]"):
        DistillConfig("builtin", "x", "y", alpha=1.5)

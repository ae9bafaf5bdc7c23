from __future__ import annotations

import dataclasses

from ctxops.evals.robustness import read_trained_on
from ctxops.models.model_catalog import CARDS_DIR, CATALOG, install_card


def test_the_smollm2_card_says_what_it_was_trained_on():
    card = CARDS_DIR / "smollm2-135m-instruct.md"
    # SmolLM2 never saw ctxops' tasks: every task and perturbation is held-out
    assert read_trained_on(card) == {"tasks": [], "perturbations": []}
    assert "cannot" in card.read_text()


def test_install_card_writes_the_card_and_rewrites_a_stale_one(tmp_path):
    entry = CATALOG["smollm2-135m-instruct"]
    target = install_card(entry, tmp_path)
    assert target == tmp_path / "README.md"
    assert target.read_text() == (CARDS_DIR / f"{entry.name}.md").read_text()
    target.write_text("old")
    install_card(entry, tmp_path)
    assert target.read_text() != "old"
    assert install_card(dataclasses.replace(entry, name="no-card-here"), tmp_path / "x") is None

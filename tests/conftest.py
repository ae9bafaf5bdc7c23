"""Shared fixtures: tiny random-weight models written to a temporary directory once per session."""

from __future__ import annotations

import pytest

from ctxops.models.random_model import write_random_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer Llama (hidden 64, 4 query / 2 KV heads) with a byte-level BPE tokenizer and a chat template."""
    return write_random_model(tmp_path_factory.mktemp("tiny-llama"))

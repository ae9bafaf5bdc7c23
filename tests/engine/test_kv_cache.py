"""Sizing the KV pool from a byte budget: exact block counts, and advice that is always possible to follow."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

from ctxops.cli.main import cli
from ctxops.engine.kv_cache import plan_cache
from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.models.config import ModelConfig

# tiny model: 2 layers x 2 KV heads x head_dim 16, fp32 -> 512 bytes per token, 8 KiB per 16-token block
BLOCK = 16 * 512


@pytest.fixture(scope="module")
def config(tiny_model_dir):
    return ModelConfig.from_path(tiny_model_dir)


def test_the_pool_is_whole_blocks_of_the_budget(config):
    info = plan_cache(config, torch.float32, 10 * BLOCK + 100, 16, 64)
    assert (info.num_blocks, info.bytes_per_token, info.total_bytes) == (10, 512, 10 * BLOCK)


@pytest.mark.parametrize(
    ("kv_cache_dtype", "budget"),
    [("auto", 1000), ("auto", BLOCK - 1), ("int8", 1000), ("int8", 8 * BLOCK + 2000)],
)
def test_a_budget_below_one_block_asks_only_for_more_memory(config, kv_cache_dtype, budget):
    with pytest.raises(ValueError) as caught:
        plan_cache(config, torch.float32, budget, 16, 100, kv_cache_dtype, max_num_seqs=8)
    message = str(caught.value)
    assert "max_model_len to" not in message  # no max_model_len fits: never advise "0 or less"
    needed = int(re.search(r"Raise kv_cache_memory to at least (\d+) bytes", message, re.IGNORECASE).group(1))
    info = plan_cache(config, torch.float32, needed, 16, 100, kv_cache_dtype, max_num_seqs=8)
    assert info.num_tokens >= 100  # the stated minimum really is enough for max_model_len
    with pytest.raises(ValueError):
        plan_cache(config, torch.float32, needed - 1, 16, 100, kv_cache_dtype, max_num_seqs=8)  # and minimal


def test_one_block_minimum_is_stated(config):
    with pytest.raises(ValueError, match=f"cannot hold even one KV block of 16 tokens .*needs {BLOCK} bytes"):
        plan_cache(config, torch.float32, 1000, 16, 4096)


def test_a_budget_of_some_blocks_offers_both_fixes(config):
    with pytest.raises(
        ValueError, match="at least 65536 bytes \\(64.0 KiB\\) or lower max_model_len to 48 or less"
    ):
        plan_cache(config, torch.float32, 3 * BLOCK, 16, 128)


def test_generate_with_a_tiny_budget_gives_a_budget(tiny_model_dir):
    result = CliRunner().invoke(
        cli, ["generate", "--model", str(tiny_model_dir), "--kv-cache-memory", "1KB", "x"]
    )
    assert result.exit_code == 1
    assert "cannot hold even one KV block" in result.output and "or less" not in result.output
    assert "Raise kv_cache_memory to at least" in result.output


def test_a_head_policy_pays_its_rings_first_and_pages_only_retrieval_heads(config):
    # layer 0 keeps both KV heads, layer 1 streams (4 sink + 12 recent): 256 of 512 bytes per token in the pool
    policy = HeadPolicy(((True, True), (False, False)), config.num_attention_heads, sink=4, recent=12)
    ring = 2 * 16 * 2 * 16 * 4  # K and V, 16 slots, 2 streaming heads, head_dim 16, fp32
    info = plan_cache(config, torch.float32, 10 * BLOCK, 16, 64, max_num_seqs=3, head_policy=policy)
    assert (info.bytes_per_token, info.full_bytes_per_token, info.ring_bytes) == (256, 512, 3 * ring)
    assert info.num_blocks == (10 * BLOCK - 3 * ring) // (16 * 256)  # about twice the blocks, half the size
    assert info.total_bytes == info.num_blocks * 16 * 256 + 3 * ring
    assert info.sequence_bytes(40) == 3 * 16 * 256 + ring
    with pytest.raises(ValueError, match="streaming-head rings.*or lower max_num_seqs"):
        plan_cache(config, torch.float32, 2 * ring, 16, 64, max_num_seqs=3, head_policy=policy)

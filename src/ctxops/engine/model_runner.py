"""Runs one scheduled step on the model.

It builds the flattened batch, runs the transformer over block tables, and samples the sequences that reached
their end.

The model runner owns every tensor of the engine: the weights and the KV pool. It turns the scheduler's
``(sequence, num_new_tokens)`` list into ids, positions, slots and attention metadata; it does not decide what runs
and it does not know text.
"""

from __future__ import annotations

import torch

from ctxops.engine.kv_cache import CacheInfo, allocate_cache
from ctxops.engine.sampler import Sampler, SampleResult
from ctxops.engine.scheduler import ScheduledSequence
from ctxops.models.attention import AttentionMetadata, BlockSpan, DecodeBatch, PrefillSegment
from ctxops.models.config import ModelConfig, RopeType
from ctxops.models.llama import LlamaForCausalLM
from ctxops.models.loader import load_weights

# Decodes sharing at least this many leading blocks read them once for all (cascade attention).
MIN_CASCADE_BLOCKS = 4


def _common_prefix_len(tables: list[list[int]]) -> int:
    """How many leading block ids every table has in common."""
    shortest = min(len(t) for t in tables)
    first = tables[0]
    for i in range(shortest):
        block = first[i]
        if any(t[i] != block for t in tables):
            return i
    return shortest


class ModelRunner:
    """Owns the model and the KV pool; executes steps."""

    def __init__(
        self, model_config: ModelConfig, path, dtype: torch.dtype, cache: CacheInfo, seed: int
    ) -> None:
        self.config = model_config
        self.dtype = dtype
        self.block_size = cache.block_size
        torch.manual_seed(seed)
        with torch.device("meta"):
            model = LlamaForCausalLM(model_config)
        model = model.to_empty(device="cpu").to(dtype)
        model.rotary = type(model.rotary)(model_config)  # buffers computed for real, not left on meta
        if model_config.tie_word_embeddings:  # to_empty gives each module its own tensor: tie again
            model.lm_head.weight = model.model.embed_tokens.weight
        load_weights(model, path, dtype)
        model.fuse_projections()
        self.model = model.eval()
        self.kv_caches = allocate_cache(model_config, cache, dtype)
        self.sampler = Sampler(seed)
        self.is_dynamic_rope = model_config.rope.type == RopeType.DYNAMIC

    # ---- batch building ---------------------------------------------------------------------------------------
    def _slots(self, block_table: list[int], start: int, end: int) -> list[int]:
        bs = self.block_size
        return [block_table[p // bs] * bs + p % bs for p in range(start, end)]

    def prepare_decode(
        self, decodes: list[ScheduledSequence], ids, positions, slots, rope_lens
    ) -> DecodeBatch | None:
        """One token per sequence; finds the cached prefix every sequence shares, for cascade attention."""
        if not decodes:
            return None
        tables = [s.seq.block_table for s in decodes]
        context_lens = []
        for s in decodes:
            seq, pos = s.seq, s.seq.num_computed_tokens
            ids.append(seq.token_ids[pos])
            positions.append(pos)
            slots.extend(self._slots(seq.block_table, pos, pos + 1))
            rope_lens.append(pos + 1)
            context_lens.append(pos + 1)
        num_shared = _common_prefix_len(tables) if len(tables) > 1 else 0
        if num_shared < MIN_CASCADE_BLOCKS:
            num_shared = 0
        own = [t[num_shared:] for t in tables]
        own_lens = [n - num_shared * self.block_size for n in context_lens]
        max_own = max(len(t) for t in own)
        padded = torch.tensor([t + [0] * (max_own - len(t)) for t in own], dtype=torch.long)
        keys = torch.arange(max_own * self.block_size)
        mask = (keys[None, :] < torch.tensor(own_lens)[:, None])[:, None, None, :]  # (N, 1, 1, L)
        return DecodeBatch(
            num_seqs=len(decodes),
            shared=BlockSpan.of(tables[0][:num_shared]) if num_shared else None,
            own=[BlockSpan.of(t) for t in own] if len(decodes) == 1 else [],
            own_lens=own_lens,
            own_tables=padded,
            own_mask=mask,
        )

    def prepare_prefill(self, prefills: list[ScheduledSequence], ids, positions, slots, rope_lens):
        segments = []
        for s in prefills:
            seq, start, end = s.seq, s.seq.num_computed_tokens, s.seq.num_computed_tokens + s.num_new_tokens
            row = len(ids)
            ids.extend(seq.token_ids[start:end])
            positions.extend(range(start, end))
            slots.extend(self._slots(seq.block_table, start, end))
            rope_lens.extend([end] * (end - start))
            mask = None
            if start > 0:
                query_pos = torch.arange(start, end)[:, None]
                mask = torch.arange(end)[None, :] <= query_pos  # (q_len, context_len)
            blocks = BlockSpan.of(seq.block_table[: -(-end // self.block_size)])
            segments.append(PrefillSegment(row, end - start, end, blocks, mask))
        return segments

    def prepare(self, scheduled: list[ScheduledSequence]):
        """Order the batch decodes first, then prefill chunks; build ids, positions and metadata."""
        decodes = [s for s in scheduled if s.num_new_tokens == 1]
        prefills = [s for s in scheduled if s.num_new_tokens > 1]
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        rope_lens: list[int] = []
        decode = self.prepare_decode(decodes, ids, positions, slots, rope_lens)
        segments = self.prepare_prefill(prefills, ids, positions, slots, rope_lens)
        meta = AttentionMetadata(
            slot_mapping=torch.tensor(slots, dtype=torch.long),
            decode=decode,
            prefills=segments,
            rope_seq_lens=torch.tensor(rope_lens) if self.is_dynamic_rope else None,
        )
        ordered = decodes + prefills
        # the last row of each sequence that reaches its end produces the next token
        sample_rows, row = [], 0
        for s in ordered:
            row += s.num_new_tokens
            if s.samples:
                sample_rows.append((row - 1, s))
        return (
            torch.tensor(ids, dtype=torch.long),
            torch.tensor(positions, dtype=torch.long),
            meta,
            sample_rows,
        )

    # ---- execution --------------------------------------------------------------------------------------------
    def run_model(self, ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata, rows: list[int]):
        hidden = self.model(ids, positions, self.kv_caches, meta)
        return self.model.compute_logits(hidden[rows])  # (len(rows), vocab) fp32

    @torch.inference_mode()
    def run(self, scheduled: list[ScheduledSequence], banned: dict[str, list[int]]) -> list[tuple]:
        """Run one step; return (sequence, SampleResult) for every sequence that produced a token."""
        if not scheduled:
            return []
        ids, positions, meta, sample_rows = self.prepare(scheduled)
        if not sample_rows:  # only mid-prompt chunks this step: fill the cache, sample nothing
            self.model(ids, positions, self.kv_caches, meta)
            return []
        logits = self.run_model(ids, positions, meta, [r for r, _ in sample_rows])
        seqs = [s.seq for _, s in sample_rows]
        results: list[SampleResult] = self.sampler.sample(
            logits,
            [seq.request_id for seq in seqs],
            [seq.params for seq in seqs],
            [banned.get(seq.request_id, []) for seq in seqs],
        )
        return list(zip(seqs, results, strict=True))

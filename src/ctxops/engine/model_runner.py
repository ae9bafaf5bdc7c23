"""Runs one scheduled step on the model.

It builds the flattened batch, runs the transformer over block tables, and samples the sequences that reached
their end.

The model runner owns every tensor of the engine: the weights (int8 per output channel with
``quantization="int8"``, :mod:`ctxops.models.weight_quant`) and the KV pool (quantized blocks plus window blocks
with ``kv_cache_dtype`` int8/int4, :mod:`ctxops.models.kv_quant`; retrieval-head blocks plus streaming-head rings
with ``kv_head_policy``, :mod:`ctxops.models.split_kv`). With a press it accumulates attention scores over
a prompt's prefill chunks and, when asked, moves the kept tokens' K/V into fresh blocks. It turns the scheduler's
``(sequence, num_new_tokens)`` list into ids, positions, slots and attention metadata; it does not decide what runs
and it does not know text.
"""

from __future__ import annotations

import torch

from ctxops.engine.block_manager import BlockManager
from ctxops.engine.kv_cache import CacheInfo, allocate_cache
from ctxops.engine.kv_head_policy import HeadPolicy
from ctxops.engine.kv_press import PressKind, PressScores, num_kept, select_tokens
from ctxops.engine.sampler import SampleFailure, Sampler, SampleResult
from ctxops.engine.scheduler import ScheduledSequence
from ctxops.engine.sequence import Sequence
from ctxops.models.attention import (
    AttentionMetadata,
    BlockSpan,
    DecodeBatch,
    HeadWindow,
    LoneDecode,
    PrefillSegment,
    QuantStep,
    RingStep,
    SeqRead,
    read_quantized,
    read_span,
)
from ctxops.models.config import ModelConfig, RopeType
from ctxops.models.llama import LlamaForCausalLM
from ctxops.models.loader import load_weights
from ctxops.models.native import kernels as native_kernels
from ctxops.models.split_kv import ring_step
from ctxops.models.weight_quant import quantize_linears

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


def quant_step(
    decodes: list[ScheduledSequence], prefills: list[ScheduledSequence], block_size: int, num_windows: int
) -> QuantStep:
    """Where each fresh token goes in a quantized cache, and what each sequence reads (see ``QuantStep``).

    ``decodes`` come first in the batch, then ``prefills``, as :meth:`ModelRunner.prepare` orders them.
    """
    bs = block_size
    fresh = num_windows * bs  # index of the first fresh row in (windows ++ fresh rows)
    full_blocks: list[int] = []
    full_src: list[int] = []
    tail_slots: list[int] = []
    tail_rows: list[int] = []
    reads: list[SeqRead] = []  # prefills: their blocks as tensors
    decode_reads: list[tuple[list[int], int, int]] = []  # decodes: (full blocks, window, tail)
    row = 0
    for i, s in enumerate(decodes + prefills):
        seq = s.seq
        assert seq.window is not None, "a quantized cache gives every sequence a window"
        start = seq.num_kv_tokens
        end = start + s.num_new_tokens
        window = seq.window * bs
        for b in range(start // bs, end // bs):  # blocks this step fills: window part, then fresh rows
            full_blocks.append(seq.block_table[b])
            first = b * bs
            held = max(start - first, 0)
            full_src.extend(range(window, window + held))
            full_src.extend(range(fresh + row + first + held - start, fresh + row + first + bs - start))
        for pos in range(max(start, end // bs * bs), end):
            tail_slots.append(window + pos % bs)
            tail_rows.append(row + pos - start)
        if i < len(decodes):
            decode_reads.append((seq.block_table[: end // bs], seq.window, end % bs))
        else:
            reads.append(
                SeqRead(torch.tensor(seq.block_table[: end // bs], dtype=torch.long), seq.window, end % bs)
            )
        row += s.num_new_tokens
    n = len(decodes)
    max_full = max((len(full) for full, _, _ in decode_reads), default=0)
    tables = torch.tensor(
        [full + [0] * (max_full - len(full)) for full, _, _ in decode_reads], dtype=torch.long
    )
    mask, lone = None, None
    if n == 1:  # read without padding: no mask
        full, window, tail = decode_reads[0]
        span = BlockSpan.of(full) if full else None
        run = span.start if span is not None and span.index is None else None
        lone = LoneDecode(len(full) * bs + tail, window, run)
    elif n > 1:
        keys = torch.arange((max_full + 1) * bs)[None, :]
        full_len = torch.tensor([len(full) * bs for full, _, _ in decode_reads], dtype=torch.long)[:, None]
        tail_len = torch.tensor([tail for _, _, tail in decode_reads], dtype=torch.long)[:, None]
        in_window = (keys >= max_full * bs) & (keys < max_full * bs + tail_len)
        mask = ((keys < full_len) | in_window)[:, None, None, :]  # (N, 1, 1, (max_full + 1) * bs)
    return QuantStep(
        full_blocks=torch.tensor(full_blocks, dtype=torch.long),
        full_src=torch.tensor(full_src, dtype=torch.long),
        tail_slots=torch.tensor(tail_slots, dtype=torch.long),
        tail_rows=torch.tensor(tail_rows, dtype=torch.long),
        decode_tables=tables.view(n, max_full),
        decode_windows=torch.tensor([window for _, window, _ in decode_reads], dtype=torch.long),
        decode_mask=mask,
        prefill_reads=reads,
        lone=lone,
    )


class ModelRunner:
    """Owns the model and the KV pool; executes steps."""

    # a head policy as decode masks over a full pool: not what the engine runs (it splits the storage, see
    # ``head_policy``), the reference tests set here to compare the split with
    head_window: HeadWindow | None = None
    head_policy: HeadPolicy | None = None  # the storage split: retrieval heads paged, streaming in rings

    def __init__(
        self,
        model_config: ModelConfig,
        path,
        dtype: torch.dtype,
        cache: CacheInfo,
        seed: int,
        quantization: str | None = None,
        kv_press: str | None = None,
        kv_compression_ratio: float = 0.5,
        head_policy: HeadPolicy | None = None,
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
        if quantization == "int8":  # the decoder's linears; embeddings and LM head stay as loaded
            quantize_linears(model.model.layers)
        self.model = model.eval()
        # a policy whose every head keeps every token changes nothing: the engine passes None for it
        self.head_policy = head_policy
        self.kv_caches = allocate_cache(model_config, cache, dtype, head_policy)
        self.quantized_kv = cache.kv_cache_dtype != "auto"
        self.num_windows = cache.num_windows
        self.press = PressKind(kv_press) if kv_press else None
        self.press_ratio = kv_compression_ratio
        self.press_scores: dict[str, PressScores] = {}  # request id -> attention on its prompt so far
        self.sampler = Sampler(seed)
        self.is_dynamic_rope = model_config.rope.type == RopeType.DYNAMIC
        self.native = native_kernels()  # built once per machine (about a second); None: torch kernels only

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
            kv_pos = pos - seq.kv_offset  # its slot in the cache (a press may have pruned the prompt)
            ids.append(seq.token_ids[pos])
            positions.append(pos)
            slots.extend(self._slots(seq.block_table, kv_pos, kv_pos + 1))
            rope_lens.append(pos + 1)
            context_lens.append(kv_pos + 1)
        num_shared = _common_prefix_len(tables) if len(tables) > 1 else 0
        # the native kernel reads blocks in place at memory speed: the torch cascade only pays without it
        if (
            num_shared < MIN_CASCADE_BLOCKS
            or self.quantized_kv
            or self.native is not None
            or self.head_window
        ):
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
            own_lens_tensor=torch.tensor(own_lens, dtype=torch.long),
        )

    def _scorer(self, seq: Sequence, kv_start: int) -> PressScores | None:
        """The press's score accumulator for a sequence whose prefill it will compress (fresh on a new prefill)."""
        if self.press is None or not self.press.needs_scores or not seq.press_pending:
            return None
        scores = self.press_scores.get(seq.request_id)
        if scores is None or kv_start == 0:
            scores = PressScores(
                self.press, seq.press_length, self.config.num_hidden_layers, self.config.num_key_value_heads
            )
            self.press_scores[seq.request_id] = scores
        return scores

    def prepare_prefill(self, prefills: list[ScheduledSequence], ids, positions, slots, rope_lens):
        segments = []
        scorers = []
        for s in prefills:
            seq, start, end = s.seq, s.seq.num_computed_tokens, s.seq.num_computed_tokens + s.num_new_tokens
            kv_start, kv_end = start - seq.kv_offset, end - seq.kv_offset
            row = len(ids)
            ids.extend(seq.token_ids[start:end])
            positions.extend(range(start, end))
            slots.extend(self._slots(seq.block_table, kv_start, kv_end))
            rope_lens.extend([end] * (end - start))
            mask = None
            if kv_start > 0:
                query_pos = torch.arange(kv_start, kv_end)[:, None]
                mask = torch.arange(kv_end)[None, :] <= query_pos  # (q_len, context_len)
            blocks = BlockSpan.of(seq.block_table[: -(-kv_end // self.block_size)])
            segments.append(PrefillSegment(row, end - start, kv_end, blocks, mask))
            scorers.append(self._scorer(seq, kv_start))
        return segments, (scorers if any(s is not None for s in scorers) else None)

    def prepare(self, scheduled: list[ScheduledSequence]):
        """Order the batch decodes first, then prefill chunks; build ids, positions and metadata."""
        # a prompt's last token, computed alone, still goes the prefill way when a press scores that prompt
        decodes = [s for s in scheduled if s.num_new_tokens == 1 and not s.seq.press_pending]
        prefills = [s for s in scheduled if s.num_new_tokens > 1 or s.seq.press_pending]
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        rope_lens: list[int] = []
        decode = self.prepare_decode(decodes, ids, positions, slots, rope_lens)
        segments, scorers = self.prepare_prefill(prefills, ids, positions, slots, rope_lens)
        meta = AttentionMetadata(
            slot_mapping=torch.tensor(slots, dtype=torch.long),
            decode=decode,
            prefills=segments,
            rope_seq_lens=torch.tensor(rope_lens) if self.is_dynamic_rope else None,
            quant=quant_step(decodes, prefills, self.block_size, self.num_windows)
            if self.quantized_kv
            else None,
            scorers=scorers,
            head_window=self.head_window if decode is not None else None,
            ring=self.ring_step(decodes, prefills) if self.head_policy is not None else None,
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

    def ring_step(self, decodes: list[ScheduledSequence], prefills: list[ScheduledSequence]) -> RingStep:
        """Where the step's streaming-head K/V go in the sequences' rings (a ring id is the sequence's window)."""
        assert self.head_policy is not None
        spans = []
        for s in decodes + prefills:
            assert s.seq.window is not None, "a head policy gives every running sequence a ring"
            start = s.seq.num_computed_tokens
            spans.append((s.seq.window, start, start + s.num_new_tokens))
        return ring_step(spans, len(decodes), self.head_policy.sink, self.head_policy.recent)

    # ---- KV compression ---------------------------------------------------------------------------------------
    def _read_sequence(self, layer: int, seq: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """A sequence's keys and values in one layer, each (num_kv_tokens, kv_heads, head_dim), in order."""
        k_cache, v_cache = self.kv_caches[layer]
        length = seq.num_kv_tokens
        if self.quantized_kv:
            full = torch.tensor(seq.block_table[: length // self.block_size], dtype=torch.long)
            return read_quantized(k_cache, SeqRead(full, seq.window, length % self.block_size))
        span = BlockSpan.of(seq.block_table)
        return read_span(k_cache, span)[:length], read_span(v_cache, span)[:length]

    def _write_sequence(self, layer: int, seq: Sequence, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write (n, kv_heads, head_dim) K/V as a sequence's first n cache tokens (its blocks, then its window)."""
        k_cache, v_cache = self.kv_caches[layer]
        n, bs = k.shape[0], self.block_size
        if self.quantized_kv:
            full = n // bs
            if full:
                ids = torch.tensor(seq.block_table[:full], dtype=torch.long)
                k_cache.store_blocks(
                    ids, k[: full * bs].unflatten(0, (full, bs)), v[: full * bs].unflatten(0, (full, bs))
                )
            k_cache.k_window[seq.window, : n - full * bs] = k[full * bs :]
            k_cache.v_window[seq.window, : n - full * bs] = v[full * bs :]
            return
        slots = torch.tensor(self._slots(seq.block_table, 0, n), dtype=torch.long)
        heads, dim = k.shape[1:]
        k_cache.view(-1, heads, dim).index_copy_(0, slots, k)
        v_cache.view(-1, heads, dim).index_copy_(0, slots, v)

    @torch.inference_mode()
    def apply_press(self, seq: Sequence, block_manager: BlockManager) -> None:
        """Prune a just-prefilled sequence's KV to the tokens the press keeps.

        The kept K/V of every layer are copied out first, then the sequence's blocks are swapped for fresh ones
        (:meth:`BlockManager.replace_blocks`) and the kept tokens written there, compacted in order.
        """
        assert self.press is not None and seq.press_pending
        seq.pressed = True
        scores = self.press_scores.pop(seq.request_id, None)
        length = seq.num_kv_tokens
        keep = num_kept(length, self.press_ratio)
        if keep >= length:
            return
        if scores is not None:
            kept = scores.select(keep)  # (layers, kv_heads, keep)
        else:
            kept = select_tokens(self.press, None, length, keep).expand(
                self.config.num_hidden_layers, self.config.num_key_value_heads, keep
            )
        compacted = []
        for layer in range(self.config.num_hidden_layers):
            k, v = self._read_sequence(layer, seq)
            index = (
                kept[layer].T.unsqueeze(-1).expand(keep, k.shape[1], k.shape[2])
            )  # (keep, kv_heads, head_dim)
            compacted.append((k.gather(0, index), v.gather(0, index)))
        block_manager.replace_blocks(seq, keep)
        seq.kv_offset = length - keep
        for layer, (k, v) in enumerate(compacted):
            self._write_sequence(layer, seq, k, v)

    def release(self, request_id: str) -> None:
        """Forget a finished or aborted request's state."""
        self.sampler.release(request_id)
        self.press_scores.pop(request_id, None)

    # ---- execution --------------------------------------------------------------------------------------------
    def run_model(self, ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata, rows: list[int]):
        hidden = self.model(ids, positions, self.kv_caches, meta)
        return self.model.compute_logits(hidden[rows])  # (len(rows), vocab) fp32

    @torch.inference_mode()
    def run(self, scheduled: list[ScheduledSequence], banned: dict[str, list[int]]) -> list[tuple]:
        """Run one step; return (sequence, SampleResult) for every sequence that produced a token.

        A row whose sampling raised comes back as a :class:`SampleFailure` for the engine to fail that request.
        """
        if not scheduled:
            return []
        ids, positions, meta, sample_rows = self.prepare(scheduled)
        if not sample_rows:  # only mid-prompt chunks this step: fill the cache, sample nothing
            self.model(ids, positions, self.kv_caches, meta)
            return []
        logits = self.run_model(ids, positions, meta, [r for r, _ in sample_rows])
        seqs = [s.seq for _, s in sample_rows]
        results: list[SampleResult | SampleFailure] = self.sampler.sample(
            logits,
            [seq.request_id for seq in seqs],
            [seq.params for seq in seqs],
            [banned.get(seq.request_id, []) for seq in seqs],
        )
        return list(zip(seqs, results, strict=True))

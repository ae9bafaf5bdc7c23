"""What one step tells attention: where its tokens go in the KV cache and what each of them attends to.

The model runner builds an :class:`AttentionMetadata` per step (block spans, prefill segments, the decode batch and,
for quantized caches, a :class:`QuantStep`; for head-split caches, a :class:`RingStep`) and passes it down explicitly; :mod:`ctxops.models.attention` and
:mod:`ctxops.models.quantized_attention` read it. This module knows block ids and tensor shapes, never sequences,
the scheduler or the cache's contents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, slots=True)
class BlockSpan:
    """Some blocks of the pool in order: one contiguous run is read as a view (no copy), else gathered."""

    start: int  # first block of the run (unused when ``index`` is set)
    count: int  # number of blocks
    index: torch.Tensor | None = None  # (count,) long block ids, when they are not one contiguous run

    @staticmethod
    def of(block_ids: list[int]) -> BlockSpan:
        if block_ids and block_ids[-1] - block_ids[0] == len(block_ids) - 1 and _is_run(block_ids):
            return BlockSpan(block_ids[0], len(block_ids))
        return BlockSpan(0, len(block_ids), torch.tensor(block_ids, dtype=torch.long))


def _is_run(block_ids: list[int]) -> bool:
    first = block_ids[0]
    return all(b == first + i for i, b in enumerate(block_ids))


@dataclass(frozen=True, slots=True)
class PrefillSegment:
    """One sequence's prefill chunk inside the flattened batch."""

    start: int  # first row of this chunk in the (T, ...) batch
    num_query_tokens: int  # tokens computed now
    context_len: int  # tokens attended to: already cached + computed now
    blocks: BlockSpan  # the sequence's blocks covering context_len
    mask: (
        torch.Tensor | None
    )  # (num_query_tokens, context_len) bool, None when the chunk starts at position 0


@dataclass(frozen=True, slots=True)
class DecodeBatch:
    """The decode rows: one query per sequence, optionally sharing a cached prefix (cascade attention).

    The shared prefix (full blocks every sequence starts with, e.g. one document asked many questions) is read
    once for all queries; each sequence's own remaining blocks are gathered into a padded, masked batch.
    """

    num_seqs: int
    shared: BlockSpan | None  # blocks common to every sequence, or None
    own: list[BlockSpan]  # per sequence, its blocks after the shared prefix
    own_lens: list[int]  # per sequence, tokens in its own blocks (>= 1: the new token is always its own)
    own_tables: torch.Tensor  # (num_seqs, max_own_blocks) long, padded with block 0
    own_mask: torch.Tensor  # (num_seqs, 1, 1, max_own_blocks * block_size) bool
    own_lens_tensor: torch.Tensor | None = None  # (num_seqs,) long: ``own_lens`` for the native kernel


@dataclass(frozen=True, slots=True)
class SeqRead:
    """Where one sequence's keys live in a quantized cache: full blocks, then ``tail`` tokens of its window."""

    full_blocks: torch.Tensor  # (num_full,) long block ids, in order
    window: int  # its window block
    tail: int  # tokens in the window (0 .. block_size - 1)


@dataclass(frozen=True, slots=True)
class LoneDecode:
    """A step's only decode, read from a quantized cache without padding or mask."""

    length: int  # its tokens: full blocks, then the window's tail
    window: int  # its window block
    # its full blocks form one contiguous run starting here (read as a view), else None
    first_block: int | None


@dataclass(frozen=True, slots=True)
class QuantStep:
    """A step's writes into, and decode reads from, a quantized cache (one plan serves every layer).

    Window slots are ``window * block_size + offset``; ``full_src`` indexes the concatenation
    ``(window slots of all windows) ++ (the step's T fresh rows)``, so a completed block is gathered from the
    tokens its window held plus the fresh ones, then quantized.
    """

    full_blocks: torch.Tensor  # (F,) long: blocks completed this step
    full_src: torch.Tensor  # (F * block_size,) long: their tokens, indexes into windows ++ fresh rows
    tail_slots: torch.Tensor  # (W,) long: window slots for fresh tokens of blocks still being filled
    tail_rows: torch.Tensor  # (W,) long: their rows in the batch
    decode_tables: torch.Tensor  # (N, max_full) long: each decode's full blocks, padded with block 0
    decode_windows: torch.Tensor  # (N,) long: each decode's window
    # (N, 1, 1, (max_full + 1) * block_size) bool: own full tokens, then window tail; None for a lone decode
    decode_mask: torch.Tensor | None
    prefill_reads: list[SeqRead] = field(default_factory=list)  # one per prefill segment
    lone: LoneDecode | None = None  # set when the step has exactly one decode


@dataclass(frozen=True, slots=True)
class HeadWindow:
    """Head-aware KV at decode as a mask: streaming KV heads read only the first ``sink`` and last ``recent`` tokens.

    The engine stores a policy split (:mod:`ctxops.models.split_kv`); this mask over a full pool is the reference
    the split storage is tested against.
    """

    streaming: torch.Tensor  # (layers, kv_heads) bool: True for a streaming head, False for a retrieval head
    sink: int
    recent: int

    def mask(self, layer: int, lengths: torch.Tensor, width: int, group: int) -> torch.Tensor:
        """(N, heads, 1, width) bool: the tokens each decode's query heads may read (``lengths``: (N,) tokens)."""
        keys = torch.arange(width)[None, None, :]
        lens = lengths[:, None, None]
        valid = keys < lens
        windowed = valid & ((keys < self.sink) | (keys >= lens - self.recent))
        per_kv = torch.where(self.streaming[layer][None, :, None], windowed, valid)  # (N, kv_heads, width)
        return per_kv.repeat_interleave(group, dim=1).unsqueeze(2)


@dataclass(frozen=True, slots=True)
class RingStep:
    """A step's writes into, and reads from, the streaming heads' rings (head-split KV; one plan, every layer).

    Ring slots are ``ring * (sink + recent) + slot`` (see :mod:`ctxops.models.split_kv`).
    """

    write_slots: torch.Tensor  # (W,) long: ring slots of the fresh tokens the rings keep
    write_rows: torch.Tensor  # (W,) long: their rows in the batch
    decode_rings: torch.Tensor  # (N, 1) long: each decode's ring, as a one-block table for the paged kernel
    decode_lens: torch.Tensor  # (N,) long: slots each decode reads (its tokens, at most sink + recent)
    decode_mask: torch.Tensor  # (N, 1, 1, sink + recent) bool: those slots
    prefill_reads: list[tuple[int, int]] = field(
        default_factory=list
    )  # per prefill: (ring, slots held before)


@dataclass(frozen=True, slots=True)
class AttentionMetadata:
    """Where a step's tokens go in the cache and what each of them attends to.

    Rows ``[0, decode.num_seqs)`` of the batch are decode tokens, one per sequence; prefill chunks follow.
    """

    slot_mapping: torch.Tensor  # (T,) long: block_id * block_size + offset for every new token
    decode: DecodeBatch | None = None
    prefills: list[PrefillSegment] = field(default_factory=list)
    rope_seq_lens: torch.Tensor | None = None  # (T,) sequence length per token, for dynamic NTK RoPE
    quant: QuantStep | None = None  # set when the cache is quantized
    # per prefill segment, None or an object whose ``observe(layer, q, keys, first_position, scale)`` records the
    # chunk's attention (a KV press scoring the prompt)
    scorers: list | None = None
    # the masked reference of a head policy over a full pool (decode rows only; tests compare the split with it)
    head_window: HeadWindow | None = None
    ring: RingStep | None = None  # set when the cache is head-split (a head policy's SplitKVCache)

    @property
    def num_decodes(self) -> int:
        return self.decode.num_seqs if self.decode else 0


def observe_chunk(
    scorer, layer: int, q: torch.Tensor, keys: torch.Tensor, seg: PrefillSegment, scale: float
) -> None:
    """Hand one prefill chunk's queries and keys to a KV press's scorer (``AttentionMetadata.scorers``)."""
    rows = slice(seg.start, seg.start + seg.num_query_tokens)
    scorer.observe(layer, q[rows], keys, seg.context_len - seg.num_query_tokens, scale)

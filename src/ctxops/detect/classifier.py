"""A learned prompt-injection classifier: a linear model over hashed n-grams of sliding windows, numpy only.

The text (lower-cased UTF-8 bytes, digits folded to ``0``) is read in full as overlapping windows of
:attr:`Featurizer.window` bytes every :attr:`Featurizer.stride` bytes; there is no cut at 512 tokens. A window's
score is the bias plus the sum of the weights of the n-grams that start in it: byte n-grams of the sizes in
:attr:`Featurizer.char_sizes` and word unigrams and bigrams (a word is a run of letters, digits or non-ASCII
bytes), each hashed into ``2**bits`` buckets. Every n-gram of the text is hashed once (polynomial prefix hashes,
uint64 arithmetic that wraps), its weight placed at its start byte, and a cumulative sum gives every window's score
by one subtraction, so the cost is linear in the text and independent of the stride.

The weights ship in ``injection_model.npz`` beside this module, written by ``bench/guard_train.py`` (scikit-learn
logistic regression on a generated training set, fixed seed) with the threshold chosen on development data. This
module knows bytes and weights; it does not know what the findings are used for, nor how the weights were trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

WEIGHTS_FILE = Path(__file__).with_name("injection_model.npz")

_BASE = 0x100000001B3  # odd, so it has an inverse modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 2**64)
_MIX = np.array(  # one odd multiplier per feature kind: the top bits of the product are the bucket
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
    dtype=np.uint64,
)  # fmt: skip
_WORD_KINDS = 2  # the word unigram and bigram kinds come after the byte n-gram kinds
_BIGRAM_JOIN = np.uint64(0x2545F4914F6CDD1D)
RUN_BYTES = 32768  # byte n-grams hashed and summed this many at a time (a multiple of every stride used)

# byte -> byte: digits fold to "0" (numbers differ, their shape does not), tab, CR, FF and VT to a space
_FOLD = np.arange(256, dtype=np.uint8)
_FOLD[ord("0") : ord("9") + 1] = ord("0")
_FOLD[[9, 11, 12, 13]] = ord(" ")
_FOLD_BYTES = _FOLD.tobytes()  # for bytes.translate, which runs in C
_WORDISH = np.zeros(
    256, dtype=bool
)  # bytes that belong to a word: a-z, 0-9 and every byte of a non-ASCII char
_WORDISH[ord("a") : ord("z") + 1] = True
_WORDISH[ord("0")] = True
_WORDISH[0x80:] = True


@dataclass(frozen=True, slots=True)
class Featurizer:
    """How text becomes hashed features and windows (stored with the weights, checked when they load)."""

    char_sizes: tuple[int, ...] = (3, 5)
    bits: int = 18  # 2**bits buckets
    window: int = 256  # bytes a window spans (about 60 English words)
    stride: int = 32  # bytes between window starts

    def __post_init__(self) -> None:
        if not self.char_sizes or any(n < 1 or n > 16 for n in self.char_sizes):
            raise ValueError(f"char_sizes {self.char_sizes} must be 1-16 bytes each, at least one")
        if len(self.char_sizes) + _WORD_KINDS > len(_MIX):
            raise ValueError(f"at most {len(_MIX) - _WORD_KINDS} byte n-gram sizes")
        if not 8 <= self.bits <= 24:
            raise ValueError(f"bits {self.bits} must be 8-24 (256 to 16M buckets)")
        if not 0 < self.stride <= self.window or self.window % self.stride or RUN_BYTES % self.stride:
            raise ValueError(f"stride {self.stride} must divide the window ({self.window} bytes)")

    def encode(self, text: str) -> np.ndarray:
        """The folded, lower-cased UTF-8 bytes of ``text`` (uint8)."""
        raw = text.lower().encode("utf-8", "surrogatepass").translate(_FOLD_BYTES)
        return np.frombuffer(raw, dtype=np.uint8)

    def hashed(self, data: np.ndarray, reuse: bool = False) -> Iterator[tuple[int | np.ndarray, np.ndarray]]:
        """(where, buckets) pieces of every feature kind: byte n-grams in runs, then word unigrams and bigrams.

        For a run of byte n-grams ``where`` is the start byte of the first (the rest follow one per byte); for
        words it is the array of start bytes. Byte n-grams come in runs of :data:`RUN_BYTES` computed in place
        (cache-sized: at 128K tokens whole-text temporaries cost more than the arithmetic); with ``reuse`` each
        run's buckets live in a buffer the next run overwrites.
        """
        length = len(data)
        powers, inverses = _powers(length + 1)
        prefix = np.zeros(length + 1, dtype=np.uint64)  # prefix[i] = sum of (byte + 1) * BASE**j for j < i
        np.add(data, np.uint64(1), out=prefix[1:], dtype=np.uint64)
        np.multiply(prefix[1:], powers[:length], out=prefix[1:])
        np.cumsum(prefix[1:], out=prefix[1:])
        shift = np.uint64(64 - self.bits)
        buffer = np.empty(min(length, RUN_BYTES), dtype=np.uint64)
        for kind, n in enumerate(self.char_sizes):
            count = max(0, length - n + 1)
            for a in range(0, count, RUN_BYTES):
                b = min(a + RUN_BYTES, count)
                h = buffer[: b - a]
                np.subtract(prefix[a + n : b + n], prefix[a:b], out=h)
                np.multiply(h, inverses[a:b], out=h)
                np.multiply(h, _MIX[kind], out=h)
                np.right_shift(h, shift, out=h)
                buckets = h.view(np.int64)  # below 2**bits after the shift: the same numbers, no copy
                yield a, buckets if reuse else buckets.copy()
        edges = np.diff(_WORDISH[data].view(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        words = (prefix[ends] - prefix[starts]) * inverses[starts]
        kind = len(self.char_sizes)
        yield starts, ((words * _MIX[kind]) >> shift).view(np.int64)
        pairs = words[:-1] * _BIGRAM_JOIN + words[1:]
        yield starts[:-1], ((pairs * _MIX[kind + 1]) >> shift).view(np.int64)

    def features(self, data: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(start byte, bucket) arrays, a pair per piece of :meth:`hashed`, for the bytes ``data``."""
        return [
            (np.arange(where, where + len(b)) if isinstance(where, int) else where, b)
            for where, b in self.hashed(data)
        ]

    def window_starts(self, length: int) -> np.ndarray:
        """Start bytes of the windows over ``length`` bytes: every multiple of the stride (the last ones shorter)."""
        return np.arange(max(1, -(-length // self.stride))) * self.stride


@cache
def _powers_upto(bits: int) -> tuple[np.ndarray, np.ndarray]:
    size = 1 << bits
    powers = np.full(size, _BASE, dtype=np.uint64)
    powers[0] = 1
    inverses = np.full(size, _BASE_INVERSE, dtype=np.uint64)
    inverses[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(powers, dtype=np.uint64), np.cumprod(inverses, dtype=np.uint64)


def _powers(count: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i modulo 2**64 for i < ``count`` (cached by power of two, so computed rarely)."""
    return _powers_upto(max(16, (count - 1).bit_length()))


@dataclass(frozen=True)
class InjectionClassifier:
    """Weights, bias and threshold of the linear model, with the featurizer they were trained for."""

    featurizer: Featurizer
    weights: np.ndarray  # float32, one per bucket
    bias: float
    threshold: float  # a window scoring above this is flagged (log-odds)

    def __post_init__(self) -> None:
        if self.weights.shape != (1 << self.featurizer.bits,):
            raise ValueError(
                f"weights have shape {self.weights.shape}; the featurizer needs {1 << self.featurizer.bits}"
            )

    def window_scores(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(start byte of each window, its score in log-odds, the text's bytes).

        Windows start at every multiple of the stride; the last ones, cut by the end of the text, are shorter.
        Weights are summed per stride-long block (float32, short sums), then blocks per window (float64).
        """
        data = self.featurizer.encode(text)
        stride, per_window = self.featurizer.stride, self.featurizer.window // self.featurizer.stride
        blocks = max(1, -(-len(data) // stride))
        block_sums = np.zeros(blocks, dtype=np.float64)
        gathered = np.empty(min(len(data), RUN_BYTES), dtype=np.float32)
        for where, buckets in self.featurizer.hashed(data, reuse=True):
            if not len(buckets):
                continue
            if isinstance(where, int):  # a run of byte n-grams from a block's first byte: sum block by block
                w = gathered[: len(buckets)]
                np.take(self.weights, buckets, out=w)
                whole = len(w) // stride * stride
                first = where // stride
                block_sums[first : first + whole // stride] += w[:whole].reshape(-1, stride).sum(axis=1)
                if whole < len(w):
                    block_sums[first + whole // stride] += w[whole:].sum()
            else:
                block_sums += np.bincount(where // stride, self.weights[buckets], minlength=blocks)
        running = np.zeros(blocks + 1, dtype=np.float64)
        np.cumsum(block_sums, out=running[1:])
        first = np.arange(blocks)
        scores = self.bias + running[np.minimum(first + per_window, blocks)] - running[first]
        return first * stride, scores, data

    def flagged(self, text: str) -> list[tuple[int, int, float]]:
        """Character spans ``(start, end, best score)`` where windows score above the threshold.

        Flagged windows that overlap are one span: where they all overlap when they do (the part every
        flagged window holds, which is where the attack is), else their union.
        """
        starts, scores, data = self.window_scores(text)
        hot = np.flatnonzero(scores > self.threshold)
        if not len(hot):
            return []
        window = self.featurizer.window
        spans: list[tuple[int, int, float]] = []
        group = [hot[0]]
        for index in [*hot[1:], None]:
            if index is not None and starts[index] < starts[group[-1]] + window:
                group.append(index)
                continue
            first, last = int(starts[group[0]]), int(starts[group[-1]])
            lo, hi = (
                (last, first + window) if last < first + window and len(group) > 1 else (first, last + window)
            )
            spans.append((lo, min(hi, len(data)), float(scores[group].max())))
            if index is not None:
                group = [index]
        if len(data) == len(text):  # ASCII: bytes are characters
            return spans
        char_at = np.cumsum((data & 0xC0) != 0x80) - 1  # the character each byte belongs to
        char_at = np.append(char_at, len(text))
        return [(int(char_at[a]), int(char_at[b]) if b < len(data) else len(text), s) for a, b, s in spans]

    def says_injection(self, text: str) -> bool:
        """Whether any window of ``text`` scores above the threshold."""
        return bool(len(text)) and bool((self.window_scores(text)[1] > self.threshold).any())

    def save(self, path: str | Path) -> None:
        """Write the model as a compressed npz (weights as float16: half the bytes, ample precision)."""
        f = self.featurizer
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.float16),
            bias=np.float64(self.bias),
            threshold=np.float64(self.threshold),
            char_sizes=np.array(f.char_sizes, dtype=np.int64),
            shape=np.array([f.bits, f.window, f.stride], dtype=np.int64),
        )

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_FILE) -> InjectionClassifier:
        """Read a model written by :meth:`save`; a missing or malformed file is a clear error."""
        try:
            with np.load(path) as npz:
                bits, window, stride = (int(v) for v in npz["shape"])
                featurizer = Featurizer(tuple(int(n) for n in npz["char_sizes"]), bits, window, stride)
                return cls(featurizer, npz["weights"].astype(np.float32), float(npz["bias"]),
                           float(npz["threshold"]))  # fmt: skip
        except FileNotFoundError:
            raise ValueError(
                f"no classifier weights at {path}; train them with python bench/guard_train.py"
            ) from None
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{path} is not a classifier written by bench/guard_train.py ({exc})") from None


@cache
def shipped() -> InjectionClassifier:
    """The classifier shipped with the package (loaded once)."""
    return InjectionClassifier.load(WEIGHTS_FILE)

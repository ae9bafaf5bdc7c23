"""Training documents for the builtin model, in the exact prompt format ``ctxops eval`` sends, and their batches.

Documents come from ``ctxops.evals``' own generators at training seeds (exact eval items and their answer format
from :mod:`ctxops.compress.task_items`, the one copy ``ctxops compress`` uses too); batches are built inline or
ahead in worker processes. Besides loss weights, a document carries *key marks*: the token where each needle's value starts and the
two tokens before each value of an answer, labelled with the adjective and noun of the key that value belongs to,
for the training-only key probe (``model.KeyProbe``). It knows token ids, loss weights and marks, not the model.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch

from builtin_training.recipe import EVAL_TASKS, TRAIN_SEED_BASE, Recipe
from ctxops.compress.task_items import join_values, task_item
from ctxops.evals import words

# ids, loss weights, key marks (position, adjective index, noun index)
Doc = tuple[list[int], list[float], list[tuple[int, int, int]]]
Slots = list[tuple[int, str]]  # (offset of a value's first token in an answer, the key that value belongs to)
Piece = tuple[list[int], bool] | tuple[list[int], bool, Slots]  # tokens, supervised, an answer's value slots

_ADJ = {w: i for i, w in enumerate(words.ADJECTIVES)}
_NOUN = {w: i for i, w in enumerate(words.NOUNS)}
NUM_ADJECTIVES, NUM_NOUNS = len(_ADJ), len(_NOUN)


def key_label(key: str) -> tuple[int, int] | None:
    """(adjective index, noun index) of an adjective-noun key, or None for any other key."""
    parts = key.split("-")
    if len(parts) != 2 or parts[0] not in _ADJ or parts[1] not in _NOUN:
        return None
    return _ADJ[parts[0]], _NOUN[parts[1]]


# ---------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------
class DocMaker:
    """Training documents as (token ids, per-token loss weights, key marks) in the exact eval prompt format."""

    def __init__(self, model_dir: Path, recipe: Recipe) -> None:
        import ctxops.evals.tasks  # noqa: F401  (registers the tasks)
        from ctxops.evals.prompt import TokenizerCounter
        from ctxops.models.tokenizer import Tokenizer

        self.tok = Tokenizer(model_dir)
        self.counter = TokenizerCounter(self.tok)
        self.eos = self.tok.token_to_id("<|im_end|>")
        self.context_weight = recipe.context_weight
        self.key_focus = recipe.key_focus
        self.compact = recipe.compact

    def encode_answer(self, answer: str) -> list[int]:
        return self.tok.encode(answer, add_special_tokens=False) + [self.eos]

    def answer_piece(self, pairs: list[tuple[str, str]], tail: str = "") -> Piece:
        """An answer listing ``pairs`` of (value, key) in order, ended by <|im_end|> and ``tail``, with its slots."""
        text = join_values([value for value, _ in pairs])
        slots: Slots = []
        start = 0
        for value, key in pairs:
            start = text.index(value, start)
            slots.append((len(self.tok.encode(text[:start], add_special_tokens=False)), key))
        return self.encode_answer(text) + self.tok.encode(tail, add_special_tokens=False), True, slots

    def _pack(self, pieces: list[Piece], keys: list[str]) -> Doc:
        """Concatenate pieces; mark every needle of ``keys`` and the two tokens before each answer value."""
        ids: list[int] = []
        weights: list[float] = []
        marks: list[tuple[int, int, int]] = []
        for chunk, supervised, *slots in pieces:
            for offset, key in slots[0] if slots else []:
                label = key_label(key)
                if label is not None:  # the two tokens before a value predict its first digit
                    marks += [(len(ids) + offset - 2, *label), (len(ids) + offset - 1, *label)]
            ids += chunk
            # weights[i] is the weight of predicting ids[i] from ids[:i]
            weights += [1.0 if supervised else self.context_weight] * len(chunk)
        for key in keys:
            label = key_label(key)
            if label is not None:
                marks += [(pos, *label) for pos in self.value_starts(ids, key)]
        return ids, weights, sorted(marks)

    def value_starts(self, ids: list[int], key: str) -> list[int]:
        """Positions of the first value token of each needle "... for {key} is: {value}." in ``ids``."""
        pattern = self.tok.encode(f" for {key} is: ", add_special_tokens=False)
        n = len(pattern)
        first = pattern[0]
        return [i + n for i in range(len(ids) - n) if ids[i] == first and ids[i : i + n] == pattern]

    def eval_task_doc(self, task: str, length: int, seed: int, depth: float) -> Doc:
        """One exact eval-task sample (training seed) with its gold answer."""
        item = task_item(self.counter, task, length, depth, seed)
        sample, prompt = item.sample, item.prompt_ids
        keys = list(sample.metadata.get("keys", []))
        queried = list(sample.metadata.get("query", []))
        answers = list(sample.answers)
        if not queried:  # vt
            answer: Piece = (self.encode_answer(item.answer), True)
        elif len(queried) == len(answers):  # one value per asked key, in the order asked
            answer = self.answer_piece(list(zip(answers, queried, strict=True)))
        else:  # several values of one key
            answer = self.answer_piece([(a, queried[0]) for a in answers])
        return self._pack([(prompt, False), answer], keys)

    def dense_doc(self, rng: random.Random, length: int, drill: bool = False) -> Doc:
        """Many needles at random depths, several questions in follow-up turns: dense supervision."""
        from ctxops.evals import words
        from ctxops.evals.haystack import NOISE_SENTENCES, insert_at_depths, join_sentences
        from ctxops.evals.prose import prose_sentences
        from ctxops.evals.tasks import niah

        noise = rng.random() < 0.4
        max_keys = max(2, min(24, length // 48))
        num_keys = rng.randint(1, max_keys)
        if drill:  # many keys in little filler: only matching the key finds the value
            num_keys = rng.randint(3, max(3, min(40, int(0.45 * length) // 22)))  # a needle: ~22 tokens
        multi = rng.random() < 0.2 and not drill
        if multi:  # up to 4 values per key: keep the needle count within the length
            num_keys = max(1, num_keys // 4)
        keys = words.distinct(words.key_word, rng, num_keys)
        values = {
            k: words.distinct(
                words.number_value, rng, rng.randint(2, max(2, min(4, length // 64))) if multi else 1
            )
            for k in keys
        }
        needles = [(k, v) for k in keys for v in values[k]]
        rng.shuffle(needles)
        placed = []
        for k, v in needles:
            r = rng.random()
            depth = 0.0 if r < 0.05 else 1.0 if r < 0.1 else rng.random()
            placed.append((depth, f"One of the special magic numbers for {k} is: {v}."))
        order = keys[:]
        rng.shuffle(order)
        num_q = 1 if rng.random() < 0.75 or len(order) < 2 else rng.randint(2, min(4, len(order)))
        first = order[:num_q]
        rest = order[num_q:][: rng.randint(0, 12 if drill else 8)]
        query = niah.query_text(first)
        prefix = niah.ANSWER_PREFIX.format(kind="numbers", query=query)

        follow: list[Piece] = []
        for k in rest:
            question = f"What are all the special magic numbers for {k} mentioned in the provided text?"
            turn = f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
            turn += niah.ANSWER_PREFIX.format(kind="numbers", query=k)
            follow += [(self.tok.encode(turn, add_special_tokens=False), False)]
            follow += [self.answer_piece([(v, k) for v in values[k]], tail="\n")]
        follow_len = sum(len(piece[0]) for piece in follow)
        answer = self.answer_piece([(v, k) for k in first for v in values[k]])

        def render(n: int) -> list[int]:
            if noise:
                filler = [NOISE_SENTENCES[i % 5] for i in range(n)]
            else:
                filler = prose_sentences(random.Random(rng_seed), n)
            context = join_sentences(insert_at_depths(filler, placed))
            prompt = niah.TEMPLATE.format(kind="numbers", context=context, query=query)
            return self.counter.encode(prompt, prefix)

        rng_seed = rng.getrandbits(32)
        while follow and follow_len > 0.35 * length:  # keep follow-up questions to about a third
            follow_len -= len(follow[-1][0]) + len(follow[-2][0])
            follow = follow[:-2]
        budget = length - len(answer[0]) - follow_len - 1
        n = max(1, budget // 8)
        ids = render(n)
        for _ in range(6):
            if len(ids) <= budget or n == 0:
                break
            n = max(0, int(n * budget / len(ids)) - 1)
            ids = render(n)
        pieces: list[Piece] = [(ids, False), answer]
        if follow:
            pieces.append((self.tok.encode("\n", add_special_tokens=False), False))
            pieces += follow
        return self._pack(pieces, keys)

    def compact_doc(self, rng: random.Random, length: int) -> Doc:
        """Needles back to back, then up to 4 short questions: the densest key-matching drill (no template)."""
        keys = words.distinct(words.key_word, rng, rng.randint(4, max(4, min(40, length // 40))))
        values = {k: words.number_value(rng) for k in keys}
        text = "".join(f"One of the special magic numbers for {k} is: {values[k]}. " for k in keys)
        pieces: list[Piece] = [(self.tok.encode(text, add_special_tokens=False), False)]
        for k in rng.sample(keys, min(4, len(keys))):
            question = f"\nThe special magic numbers for {k} are"
            pieces += [(self.tok.encode(question, add_special_tokens=False), False)]
            pieces += [(self.tok.encode(f" {values[k]}.", add_special_tokens=False), True, [(1, k)])]
        return self._pack(pieces, keys)

    def doc(self, seed: int, length: int) -> Doc:
        rng = random.Random(seed)
        if self.compact > 0 and rng.random() < self.compact:
            return self.compact_doc(rng, length)
        if rng.random() < 0.3:
            task = rng.choice(EVAL_TASKS)
            depth = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, rng.random()])
            try:
                doc = self.eval_task_doc(task, length, seed, depth)
                if len(doc[0]) <= length:
                    return doc
            except ValueError:  # too short for this task (TaskError is a ValueError)
                pass
        drill = self.key_focus > 0 and rng.random() < self.key_focus
        return self.dense_doc(rng, length, drill)


def batch_lengths(recipe: Recipe, progress: float, rng: random.Random) -> int:
    """The curriculum: the longest length grows geometrically; each step samples a length up to it."""
    frac = min(1.0, max(0.0, progress - recipe.hold) / recipe.ramp)
    top = 2 * recipe.min_len * (recipe.max_len / (2 * recipe.min_len)) ** frac
    lo = recipe.min_len
    length = int(math.exp(rng.uniform(math.log(lo), math.log(max(lo, top)))))
    if rng.random() < 0.5:  # half the steps at the current frontier
        length = int(top)
    return max(lo, min(recipe.max_len, length))


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def make_batch(maker: DocMaker, recipe: Recipe, step: int, progress: float) -> Batch:
    """(ids, weights, marks) of one step: ids and weights (docs, width), padding weighted 0; marks (M, 4) rows of
    (doc, position, adjective, noun). Seeds come from the step alone."""
    rng = random.Random(recipe.seed * 1_000_003 + step)
    length = batch_lengths(recipe, progress, rng)
    count = max(1, recipe.tokens_per_step // length)
    stride = max(
        1000, recipe.tokens_per_step // recipe.min_len
    )  # 1000 for the CPU recipe (as v1 was trained)
    docs = [maker.doc(TRAIN_SEED_BASE + step * stride + i, length) for i in range(count)]
    width = max(len(doc[0]) for doc in docs)
    ids = torch.full((count, width), maker.eos, dtype=torch.long)
    weights = torch.zeros((count, width))
    rows = []
    for i, (d, w, marks) in enumerate(docs):
        ids[i, : len(d)] = torch.tensor(d)
        weights[i, : len(w)] = torch.tensor(w)
        rows += [(i, *m) for m in marks if m[0] < width - 1]  # the model reads ids[:, :-1]
    return ids, weights, torch.tensor(rows, dtype=torch.long).reshape(-1, 4)


class BatchPool:
    """Makes batches ahead in worker processes (``workers`` > 0) or inline; batches come back in step order.

    A batch's length is fixed when it is asked for, from the schedule's progress at that moment, so with a
    wall-clock schedule the curriculum lags by at most ``depth`` batches.
    """

    def __init__(self, tok_dir: Path, recipe: Recipe, workers: int) -> None:
        self.recipe = recipe
        self.maker = DocMaker(tok_dir, recipe)
        self.pending: list = []
        self.pool = None
        if workers > 0:
            import multiprocessing as mp

            # fork before any CUDA call: the workers only build token ids
            self.pool = mp.get_context("fork").Pool(workers, _worker_init, (str(tok_dir), recipe))
            self.depth = 2 * workers

    def get(self, step: int, progress: float) -> Batch:
        if self.pool is None:
            return make_batch(self.maker, self.recipe, step, progress)
        while len(self.pending) < self.depth:
            ahead = step + len(self.pending)
            self.pending.append(self.pool.apply_async(_worker_batch, (self.recipe, ahead, progress)))
        ids, weights, marks = self.pending.pop(0).get()
        return torch.from_numpy(ids).long(), torch.from_numpy(weights).float(), torch.from_numpy(marks).long()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()


_WORKER_MAKER: DocMaker | None = None


def _worker_init(tok_dir: str, recipe: Recipe) -> None:
    global _WORKER_MAKER
    torch.set_num_threads(1)
    _WORKER_MAKER = DocMaker(Path(tok_dir), recipe)


def _worker_batch(recipe: Recipe, step: int, progress: float):
    assert _WORKER_MAKER is not None
    ids, weights, marks = make_batch(_WORKER_MAKER, recipe, step, progress)
    return ids.to(torch.int32).numpy(), weights.to(torch.float16).numpy(), marks.to(torch.int32).numpy()

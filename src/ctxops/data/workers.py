"""A function mapped over a stream in worker processes, results in input order, with a bounded number in flight.

``ordered_map(function, values, workers)`` yields ``(value, function(value))`` in the order of ``values``. With
``workers`` <= 1 it runs inline. Otherwise the workers are *forked* after ``function`` exists, so a large read-only
state that ``function`` closes over (an eval set's n-gram index, hundreds of MB) is shared copy-on-write instead of
pickled to each worker; only the argument and the result cross a pipe. At most ``depth`` values (default twice the
workers) are in flight, so a corpus of any size is read only as fast as it is matched: memory stays bounded by a
few documents. The caller applies the results in order, so checkpoints mean the same as in a serial run.

Fork is POSIX-only; where it is missing the map runs inline. This module knows processes, not documents.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import AsyncResult
from typing import Any, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

_FUNCTION: Callable[[Any], Any] | None = None  # set in the parent before the fork; the workers inherit it


def _call(argument: Any) -> Any:
    assert _FUNCTION is not None, "a worker runs only the function its parent set before forking"
    return _FUNCTION(argument)


def fork_available() -> bool:
    """Whether this platform can fork (the workers share the parent's memory only when forked)."""
    return "fork" in multiprocessing.get_all_start_methods()


def ordered_map(
    function: Callable[[Any], Out],
    values: Iterable[In],
    workers: int,
    depth: int = 0,
    argument: Callable[[In], Any] | None = None,
) -> Iterator[tuple[In, Out]]:
    """``(value, function(argument(value)))`` for every value, in order (``argument`` defaults to the value).

    ``argument`` picks what is sent to the worker (a document's text, not the whole document).
    """
    pick = argument or (lambda value: value)
    if workers <= 1 or not fork_available():
        for value in values:
            yield value, function(pick(value))
        return
    global _FUNCTION
    if _FUNCTION is not None:
        raise RuntimeError("ordered_map is already running in this process; nest it inline (workers=1)")
    _FUNCTION = function
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: deque[tuple[In, AsyncResult[Any]]] = deque()
            for value in values:
                pending.append((value, pool.apply_async(_call, (pick(value),))))
                if len(pending) >= (depth or 2 * workers):
                    done, result = pending.popleft()
                    yield done, result.get()
            while pending:
                done, result = pending.popleft()
                yield done, result.get()
    finally:
        _FUNCTION = None

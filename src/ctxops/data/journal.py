"""Append-only result files that survive a crash: what a long ``ctxops data`` run has finished, kept on disk.

A run appends its results (findings, redacted text, per-document sketches) to ``NAME.part`` files in its output
directory. :meth:`Journal.commit` flushes them to disk and then writes the checkpoint (``state.json``, through
:class:`~ctxops.data.outdir.OutDir`) with each file's committed size in bytes. A rerun with the same fingerprint cuts
every part back to its committed size, so bytes appended after the last commit (half a line, when the process was
killed) are dropped, and the run continues after the last committed document. :meth:`Journal.finish` commits, then
renames every part to its final name; :meth:`Journal.close` removes the checkpoint once the run's report is written.

:func:`pending` streams the documents still to do and :class:`Stop` turns Ctrl-C or SIGTERM into a stop at the next
document boundary. This module knows bytes and documents, not what a run does with them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ctxops.data import corpus as corpus_io
from ctxops.data.outdir import STATE_FILE, OutDir

PART = ".part"


class Journal:
    """The append-only part files of one run and the checkpoint that says how much of each is committed."""

    def __init__(self, out: OutDir, key: str, checkpoint_s: float = 30.0) -> None:
        self.out, self.key, self.checkpoint_s = out, key, checkpoint_s
        self.sizes: dict[str, int] = {}  # part -> committed bytes
        self.handles: dict[str, IO[bytes]] = {}
        self.last_commit = time.monotonic()
        self.finished = False  # the resumed run had committed its end (only the report was left to write)

    def resume(self) -> dict[str, Any] | None:
        """The state of the last commit of a run with this fingerprint (None: a fresh start)."""
        saved = self.out.load_state(self.key)
        if saved is None:
            return None
        state = dict(saved[0])
        self.sizes = {name: int(size) for name, size in state.pop("journal", {}).items()}
        self.finished = bool(state.pop("finished", False))
        if self.finished:
            self._rename_parts()  # killed between the last commit and the renames
        return state

    def _path(self, name: str) -> Path:
        return self.out.path / (name + PART)

    def _handle(self, name: str) -> IO[bytes]:
        handle = self.handles.get(name)
        if handle is None:
            path = self._path(name)
            if name in self.sizes and not path.exists():
                raise OSError(
                    f"{path}: missing, though the checkpoint names it; delete {self.out.path} to start over"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("r+b" if name in self.sizes else "w+b")
            handle.truncate(self.sizes.get(name, 0))  # drop what was appended after the last commit
            handle.seek(0, os.SEEK_END)
            self.handles[name] = handle
        return handle

    def append(self, name: str, data: bytes) -> None:
        """Append ``data`` to part ``name`` (created on first use); durable at the next commit."""
        self._handle(name).write(data)

    def committed(self, name: str) -> bytes:
        """The committed bytes of part ``name`` (empty when it has none), e.g. to rebuild state on resume."""
        size = self.sizes.get(name, 0)
        if not size:
            return b""
        with self._path(name).open("rb") as handle:
            data = handle.read(size)
        if len(data) != size:
            raise OSError(
                f"{self._path(name)}: shorter than its checkpoint says; delete {self.out.path} to start over"
            )
        return data

    def due(self) -> bool:
        """True when ``checkpoint_s`` seconds have passed since the last commit."""
        return time.monotonic() - self.last_commit >= self.checkpoint_s

    def commit(self, state: dict[str, Any], finished: bool = False) -> None:
        """Make every appended byte durable, then record the sizes with ``state`` (the commit point)."""
        for name, handle in self.handles.items():
            handle.flush()
            os.fsync(handle.fileno())
            self.sizes[name] = handle.tell()
        self.out.save_state({**state, "fingerprint": self.key, "journal": self.sizes, "finished": finished})
        self.last_commit = time.monotonic()

    def finish(self, state: dict[str, Any]) -> None:
        """Commit ``state`` as finished and give every part its final name."""
        self.commit(state, finished=True)
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()
        self._rename_parts()

    def _rename_parts(self) -> None:
        for name in self.sizes:
            if self._path(name).exists():
                os.replace(self._path(name), self.out.path / name)

    def close(self) -> None:
        """Remove the checkpoint and any part left (the run's results are written; a rerun starts over)."""
        for handle in self.handles.values():
            handle.close()
        for name in self.sizes:
            self._path(name).unlink(missing_ok=True)
        (self.out.path / STATE_FILE).unlink(missing_ok=True)


def pending(files: Sequence[Path], done: dict[str, int]) -> Iterator[tuple[str, int, corpus_io.Document]]:
    """``(file, number in file, document)`` of every document after the first ``done[file]`` of its file."""
    for path in files:
        skip = done.get(str(path), 0)
        for count, doc in enumerate(corpus_io.iter_file(path), 1):
            if count > skip:
                yield str(path), count, doc


class Stop:
    """Ctrl-C (SIGINT) and SIGTERM ask the run to stop at the next document boundary instead of dying mid-write.

    Use as a context manager around the run; outside the main thread (where signals cannot be caught) it only
    reports False. A second Ctrl-C while stopping still interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.requested

"""Append-only JSONL logs that make a synthesis run resumable.

Durability policy (documented in docs/synthesis.md):

- every line is written with one unbuffered ``write`` as soon as its record (or attempt) is
  finished, so it is in the kernel's page cache before the next request starts: a process killed
  at any moment (SIGKILL included) loses nothing that was written;
- ``fsync`` runs at most every ``fsync_interval`` seconds (default 1 s; 0 = after every line) and
  on close: a machine crash or power loss can lose at most that last interval, and what it loses
  is simply requested again on the next run;
- a line cut short by a kill (no final newline) is dropped on open, with a warning: its record was
  not finished, so it is redone; it is never read as a finished record nor duplicated;
- a bad line *followed by* good lines is not a kill artifact: opening fails, naming file and line;
- an exclusive ``flock`` on the output file stops two runs from writing the same file (the kernel
  releases it when a process dies, even by SIGKILL).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``kind`` of a rejects-file line: one per rejected attempt, or one per record that failed.
REJECTED, FAILED = "rejected", "failed"


class AppendLog:
    """A JSONL file opened for appending, one durable line per :meth:`append`.

    Parameters
    ----------
    path : Path
        Created (with its folder) when missing.
    fsync_interval : float, default=1.0
        Seconds between fsyncs; 0 fsyncs after every line.
    lock : bool, default=False
        Take an exclusive, non-blocking ``flock``; fail if another process holds it.
    """

    def __init__(self, path: Path, *, fsync_interval: float = 1.0, lock: bool = False) -> None:
        if fsync_interval < 0:
            raise ValueError(f"fsync_interval must be >= 0, got {fsync_interval}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync_interval = fsync_interval
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        if lock:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                raise ValueError(f"{self.path} is being written by another synthesize run") from None
        self._last_sync = time.monotonic()
        self.lines = self._read_and_repair()

    def _read_and_repair(self) -> list[dict[str, Any]]:
        """Every complete line; a torn last line (from a kill) is truncated away."""
        with open(self.path, "rb") as handle:
            data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning(
                "%s: dropped an unfinished last line (%d bytes) left by an interrupted run; its record is redone",
                self.path, len(data) - end,
            )
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        lines = []
        for number, raw in enumerate(data[:end].splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as err:
                raise ValueError(f"{self.path}, line {number}: not valid JSON ({err}); fix or remove that line") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise ValueError(f"{self.path}, line {number}: expected a JSON object with a string 'id'")
            lines.append(row)
        return lines

    def append(self, row: dict[str, Any]) -> None:
        """Write ``row`` as one line now (see the module docstring for durability)."""
        data = (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval:
            os.fsync(self._fd)
            self._last_sync = now

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)  # also releases the flock
            self._fd = -1

    def __enter__(self) -> "AppendLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class ResumeState:
    """What earlier runs left: which records are finished and how many attempts each has used."""

    #: ids in the output file: finished, never requested again
    done: set[str] = field(default_factory=set)
    #: rejected attempts per id (attempts count across runs towards ``max_attempts``)
    rejected_attempts: Counter = field(default_factory=Counter)
    #: ids that failed in an earlier run (they are tried again)
    failed: set[str] = field(default_factory=set)

    @classmethod
    def from_logs(cls, output_lines: list[dict[str, Any]], reject_lines: list[dict[str, Any]]) -> "ResumeState":
        state = cls()
        for number, row in enumerate(output_lines, 1):
            if row["id"] in state.done:
                raise ValueError(f"output line {number}: record {row['id']!r} appears twice")
            state.done.add(row["id"])
        for row in reject_lines:
            if row.get("kind") == REJECTED:
                state.rejected_attempts[row["id"]] += 1
            elif row.get("kind") == FAILED:
                state.failed.add(row["id"])
        return state

    def gave_up(self, record_id: str, max_attempts: int) -> bool:
        """True when the record used all its attempts on rejected traces in earlier runs."""
        return record_id not in self.done and self.rejected_attempts[record_id] >= max_attempts

"""The generations JSONL: one line per (task, benchmark, sample), appended and flushed as it goes.

Appending line by line and flushing after every batch means an interrupted run loses at most the
batch in flight; on restart, :func:`read_generations` returns what is done and the run skips it.
A last line cut off mid-write (the process was killed) is dropped and truncated away; a corrupt
line anywhere else is an error naming its line number, because it means the file was edited or
two runs wrote to it at once.

Each line holds at least ``benchmark``, ``task``, ``label`` (the gold label for that task) and
``output`` (the raw guard output); the harness also writes ``id``, ``modality``, ``num_tokens``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Iterable, Union

REQUIRED_FIELDS = ("benchmark", "task", "label", "output")


def row_key(row: dict) -> tuple[str, str, str]:
    """``(task, benchmark, id)``: what identifies a finished generation."""
    return (row["task"], row["benchmark"], str(row.get("id", "")))


def read_generations(path: Union[str, Path], *, repair: bool = False) -> list[dict[str, Any]]:
    """All rows of a generations file, validated.

    With ``repair=True`` a truncated last line (no newline, not valid JSON) is cut from the file so
    appending can resume cleanly; without it, such a line is ignored.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    rows: list[dict[str, Any]] = []
    good_end = 0  # byte offset just after the last valid line
    lines = data.splitlines(keepends=True)
    for lineno, raw in enumerate(lines, start=1):
        complete = raw.endswith(b"\n")
        if raw.strip():
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                if lineno == len(lines) and not complete:  # cut off mid-write by an interruption
                    break
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg}); the file is corrupt") from None
            _check_row(row, f"{path}:{lineno}")
            rows.append(row)
        good_end += len(raw)
    if repair:
        if good_end < len(data):
            with open(path, "r+b") as fh:
                fh.truncate(good_end)
        if good_end and not data[:good_end].endswith(b"\n"):
            with open(path, "ab") as fh:  # a complete last row without its newline
                fh.write(b"\n")
    return rows


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in row]
    if missing:
        raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
    if not isinstance(row["output"], str):
        raise ValueError(f"{where}: field 'output' must be a string")


class GenerationLog:
    """Append-only writer for the generations file (a context manager)."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8")

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows and push them to disk (flush + fsync): a kill after this loses nothing."""
        for row in rows:
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "GenerationLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Row-level errors and the one policy that decides what a bad row does: stop the build, or be counted.

Every reader and writer reports a bad row as a :class:`RowError` naming the row id and the field,
and hands it to an :class:`ErrorPolicy`. With ``on_error="raise"`` (the default) the first bad row
stops the build with that message; with ``"skip"`` the row is dropped, counted under its reason and
kept as an example for the closing summary. Nothing is ever dropped silently.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

ON_ERROR_CHOICES = ("raise", "skip")


class RowError(ValueError):
    """A row that cannot be used, with the row id, the field and a short reason (the count key).

    Subclasses ``ValueError`` so the CLI prints it as one line.
    """

    def __init__(self, row_id: str, field: str, reason: str, detail: str) -> None:
        self.row_id = row_id
        self.field = field
        self.reason = reason
        self.detail = detail
        super().__init__(f"row {row_id!r}, field {field!r}: {detail}")


class ErrorPolicy:
    """Raise on the first bad row, or skip it and count it by reason.

    Parameters
    ----------
    on_error : {"raise", "skip"}, default="raise"
    max_examples : int, default=20
        How many skipped-row messages to keep for the summary.
    """

    def __init__(self, on_error: str = "raise", *, max_examples: int = 20) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {', '.join(ON_ERROR_CHOICES)}, got {on_error!r}")
        self.on_error = on_error
        self.max_examples = max_examples
        self.skipped: Counter[str] = Counter()
        self.examples: list[str] = []

    def call(self, fn: Callable[..., T], *args, **kwargs) -> Optional[T]:
        """``fn(*args, **kwargs)``; a :class:`RowError` is raised or counted (then None is returned)."""
        try:
            return fn(*args, **kwargs)
        except RowError as err:
            self.record(err)
            return None

    def record(self, err: RowError) -> None:
        """Count ``err`` (skip mode) or raise it (raise mode)."""
        if self.on_error == "raise":
            raise err
        self.skipped[err.reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(err))

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

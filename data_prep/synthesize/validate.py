"""Accept or reject a synthesized trace.

A trace becomes a training target only if the guard's own parser (:func:`rewards.grammar.parse_verdict`,
the one the reward and evaluation use) reads it as well formed and its labels equal the ground
truth. A rejected trace says why in a short machine-readable ``code`` (counted in the summary)
and a human message (written to the rejects file).

The accepted target is rebuilt with :func:`rewards.grammar.format_output` from the reasoning inside
``<think>`` and the *ground-truth* labels, so every target has the exact layout of the released
models whatever spacing or capitalisation the API used, and nothing outside the two blocks
(a "Sure, here is…" preamble) leaks into training.
"""

from __future__ import annotations

import re
from typing import Optional

from rewards.grammar import format_output, parse_verdict

_THINK_BODY = re.compile(r"<think>(.*?)</think>", re.IGNORECASE | re.DOTALL)

#: Rejection codes, in the order they are checked.
REJECTION_CODES = ("empty", "grammar", "unreadable_labels", "wrong_request_label", "wrong_response_label", "empty_reasoning")


class TraceRejected(Exception):
    """A trace that cannot be used as a target; ``code`` is one of :data:`REJECTION_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _shown(label: Optional[str]) -> str:
    return "unreadable" if label is None else label


def check_trace(text: Optional[str], *, request_label: str, response_label: str, finish_reason: Optional[str] = None) -> str:
    """The canonical guard output for ``text``, or raise :class:`TraceRejected`.

    Parameters
    ----------
    text : str or None
        The completion's message content.
    request_label, response_label : str
        Ground truth, already normalised (``harmful``/``unharmful``; ``none`` for no response).
    finish_reason : str, optional
        Added to a grammar rejection when it explains it (``length``: the trace was cut off).
    """
    if text is None or not text.strip():
        raise TraceRejected("empty", f"the completion has no text (finish_reason={finish_reason})")
    verdict = parse_verdict(text)
    if not verdict.format_ok:
        hint = " (cut off: finish_reason=length; raise --max-new-tokens)" if finish_reason == "length" else ""
        raise TraceRejected("grammar", f"need one <think>…</think> then one <result>…</result>{hint}")
    if not verdict.parsed:
        raise TraceRejected(
            "unreadable_labels",
            f"result block labels unreadable (request {_shown(verdict.request)}, response {_shown(verdict.response)})",
        )
    if verdict.request != request_label:
        raise TraceRejected("wrong_request_label", f"request labelled {verdict.request}, ground truth {request_label}")
    if verdict.response != response_label:
        raise TraceRejected("wrong_response_label", f"response labelled {verdict.response}, ground truth {response_label}")
    reasoning = _THINK_BODY.search(text).group(1).strip()  # type: ignore[union-attr]  # format_ok: exactly one
    if not reasoning:
        raise TraceRejected("empty_reasoning", "the <think> block is empty")
    return format_output(reasoning, request_label, response_label)

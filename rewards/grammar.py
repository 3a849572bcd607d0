"""The guard's output grammar: labels, the one parser, and the one formatter.

Everything that reads or writes ``Request: …`` / ``Response: …`` goes through this module so that
training targets, the reward, mining and evaluation can never disagree on what an answer says
(DESIGN.md §2)::

    <think>
    ...reasoning steps...
    </think>
    <result>
    Request: harmful|unharmful
    Response: harmful|unharmful|None
    </result>

Pure Python, no third-party imports: the reward must be importable without verl or torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

HARMFUL = "harmful"
UNHARMFUL = "unharmful"
NO_RESPONSE = "none"

#: Labels a request can carry.
REQUEST_LABELS = (HARMFUL, UNHARMFUL)
#: Labels a response slot can carry; ``none`` means the sample has no response.
RESPONSE_LABELS = (HARMFUL, UNHARMFUL, NO_RESPONSE)

_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_RESULT_OPEN = re.compile(r"<result>", re.IGNORECASE)
_RESULT_CLOSE = re.compile(r"</result>", re.IGNORECASE)
_RESULT_BLOCK = re.compile(r"<result>(.*?)</result>", re.IGNORECASE | re.DOTALL)
# A label line: "Request: harmful". The value runs to the end of the line; it is checked strictly below.
_SLOT = re.compile(r"\b(request|response)\s*:[ \t]*([^\n\r]*)", re.IGNORECASE)
# A label line with a label value, used to find labels placed outside the result block.
_LABEL_LINE = re.compile(r"\b(?:request|response)\s*:\s*(?:un)?harmful\b|\bresponse\s*:\s*none\b", re.IGNORECASE)
_TRAILING_PUNCT = " \t.,;:!*_`'\"]"


def normalize_label(value: Any, *, task: str = "request") -> Optional[str]:
    """Map a ground-truth label to ``harmful`` / ``unharmful`` / ``none`` (response only).

    Accepts the spellings found in the public safety datasets: strings in any case, booleans
    (``True`` = harmful), 0/1, ``"safe"``/``"unsafe"``. ``None``/``"none"``/``""`` is allowed for
    the response task only and means "there is no response" (returned as ``"none"``).

    Raises
    ------
    ValueError
        For any other value, naming it: bad data must never silently train.
    """
    if task not in ("request", "response"):
        raise ValueError(f"task must be 'request' or 'response', got {task!r}")
    if isinstance(value, bool):
        return HARMFUL if value else UNHARMFUL
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        if task == "response":
            return NO_RESPONSE
        raise ValueError("request label is missing (None); every request needs a label")
    if isinstance(value, (int, float)) and value in (0, 1):
        return HARMFUL if value == 1 else UNHARMFUL
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ("harmful", "unsafe", "yes", "1", "true"):
            return HARMFUL
        if key in ("unharmful", "harmless", "safe", "no", "0", "false"):
            return UNHARMFUL
        if key in ("none", "", "null", "n/a"):
            if task == "response":
                return NO_RESPONSE
            raise ValueError(f"request label {value!r} means 'no label'; every request needs a label")
    allowed = REQUEST_LABELS if task == "request" else RESPONSE_LABELS
    raise ValueError(f"unknown {task} label {value!r}; expected one of {', '.join(allowed)}")


def format_verdict(request: str, response: Optional[str]) -> str:
    """The result-block body for two labels, e.g. ``"Request: harmful\\nResponse: None"``.

    This is also the ground-truth string stored in RL parquet (``reward_model.ground_truth``).
    """
    req = normalize_label(request, task="request")
    resp = normalize_label(response, task="response")
    return f"Request: {req}\nResponse: {'None' if resp == NO_RESPONSE else resp}"


def format_output(reasoning: str, request: str, response: Optional[str]) -> str:
    """A complete guard output (reasoning trace + result block) in the released models' layout."""
    return f"<think>\n{reasoning.strip()}\n</think>\n<result>\n{format_verdict(request, response)}\n</result>"


@dataclass(frozen=True)
class Verdict:
    """What a guard output says.

    ``request``/``response`` are ``None`` when that slot could not be read (missing, ambiguous or
    a gaming attempt): such a slot never earns credit. ``response == "none"`` means the model said
    there is no response.
    """

    request: Optional[str]
    response: Optional[str]
    #: one ``<think>…</think>`` then one ``<result>…</result>``, each exactly once, in that order.
    format_ok: bool
    #: exactly one ``<result>…</result>`` block (the released code's only format check).
    result_ok: bool

    @property
    def parsed(self) -> bool:
        """Both slots were read."""
        return self.request is not None and self.response is not None


def _read_slot(block: str, name: str) -> Optional[str]:
    """The label of slot ``name`` inside a result block, or None if absent or ambiguous."""
    values = [m.group(2) for m in _SLOT.finditer(block) if m.group(1).lower() == name]
    if not values:
        return None
    labels = set()
    for raw in values:
        words = raw.strip().strip(_TRAILING_PUNCT).lower().split()
        if len(words) != 1:  # "harmful / unharmful", "harmful unharmful", empty ...
            return None
        word = words[0].strip(_TRAILING_PUNCT)
        allowed = REQUEST_LABELS if name == "request" else RESPONSE_LABELS
        if word not in allowed:
            return None
        labels.add(word)
    return labels.pop() if len(labels) == 1 else None  # repeated slots must agree


def _count(pattern: re.Pattern[str], text: str) -> int:
    return sum(1 for _ in pattern.finditer(text))


def parse_verdict(text: Any) -> Verdict:
    """Read the labels from a guard output. Never raises.

    Rules (DESIGN.md §2, hardened against reward gaming):

    - case-insensitive; labels are read only inside the ``<result>`` block;
    - exactly one result block, else nothing is read (two blocks could disagree);
    - a slot whose value is not exactly one label (``harmful/unharmful``), or that appears twice
      with different labels, is unread;
    - a label line (``Request: harmful``) anywhere outside the result block voids both slots: the
      output is trying to say two things;
    - ``None`` in the response slot means "no response".
    """
    if not isinstance(text, str):
        try:
            text = text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else str(text)
        except Exception:  # pragma: no cover - exotic objects whose __str__ fails
            return Verdict(None, None, False, False)
    n_think_open, n_think_close = _count(_THINK_OPEN, text), _count(_THINK_CLOSE, text)
    n_res_open, n_res_close = _count(_RESULT_OPEN, text), _count(_RESULT_CLOSE, text)
    blocks = list(_RESULT_BLOCK.finditer(text))
    result_ok = n_res_open == 1 and n_res_close == 1 and len(blocks) == 1
    format_ok = False
    if result_ok and n_think_open == 1 and n_think_close == 1:
        t_open = _THINK_OPEN.search(text).start()  # type: ignore[union-attr]
        t_close = _THINK_CLOSE.search(text).start()  # type: ignore[union-attr]
        format_ok = t_open < t_close < blocks[0].start()
    if not result_ok:
        return Verdict(None, None, format_ok, result_ok)
    block = blocks[0]
    outside = text[: block.start()] + "\n" + text[block.end():]
    if _LABEL_LINE.search(outside):
        return Verdict(None, None, format_ok, result_ok)
    body = block.group(1)
    return Verdict(_read_slot(body, "request"), _read_slot(body, "response"), format_ok, result_ok)


def ground_truth_labels(ground_truth: Any) -> tuple[str, str]:
    """``(request, response)`` labels from a ground truth in any accepted form.

    ``ground_truth`` is a result-grammar string (``"Request: harmful\\nResponse: None"``), a mapping
    ``{"request": ..., "response": ...}``, or a JSON string of that mapping. The response label is
    ``"none"`` when the sample has no response.

    Raises
    ------
    ValueError
        When a label is missing or unknown (the message names it).
    """
    if isinstance(ground_truth, Mapping):
        if "request" not in ground_truth:
            raise ValueError(f"ground truth mapping has no 'request' key: {dict(ground_truth)!r}")
        return (
            normalize_label(ground_truth["request"], task="request"),
            normalize_label(ground_truth.get("response"), task="response"),
        )
    if isinstance(ground_truth, (bytes, bytearray)):
        ground_truth = ground_truth.decode("utf-8")
    if not isinstance(ground_truth, str):
        raise ValueError(f"ground truth must be a string or a mapping, got {type(ground_truth).__name__}")
    stripped = ground_truth.strip()
    if stripped.startswith("{"):
        import json

        try:
            return ground_truth_labels(json.loads(stripped))
        except json.JSONDecodeError as err:
            raise ValueError(f"ground truth looks like JSON but does not parse: {err}") from None
    slots = {m.group(1).lower(): m.group(2).strip().strip(_TRAILING_PUNCT) for m in _SLOT.finditer(stripped)}
    if "request" not in slots:
        raise ValueError(f"ground truth {ground_truth!r} has no 'Request:' label")
    return (
        normalize_label(slots["request"], task="request"),
        normalize_label(slots.get("response"), task="response"),
    )

"""The guard's output grammar: labels, the one parser, and the one formatter.

Everything that reads or writes ``Request: …`` / ``Response: …`` goes through this module so that
training targets, the reward, mining and evaluation can never disagree on what an answer says
(docs/design.md §2)::

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

# The parser lower-cases the output once and then works on that copy with one tag scan, ``rfind``
# and dict look-ups: one GRPO step scores ~8K outputs, so parsing must cost microseconds, not a stack
# of case-insensitive regex passes (``benchmarks/bench_reward.py``).
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_RESULT_OPEN, _RESULT_CLOSE = "<result>", "</result>"
_TAG = re.compile(r"</?(?:think|result)>")
_WELL_FORMED_TAGS = [_THINK_OPEN, _THINK_CLOSE, _RESULT_OPEN, _RESULT_CLOSE]
_RESULT_TAGS = [_RESULT_OPEN, _RESULT_CLOSE]
# A slot line inside the (lower-cased) result block: "request: harmful". The value runs to the end of
# the line; it is checked strictly in ``_read_slots``.
_SLOT = re.compile(r"\b(request|response)\s*:[ \t]*([^\n\r]*)")
# The same, case-insensitive, for ground-truth strings (not lower-cased: error messages quote them).
_GT_SLOT = re.compile(r"\b(request|response)\s*:[ \t]*([^\n\r]*)", re.IGNORECASE)
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


def _read_slots(body: str) -> tuple[Optional[str], Optional[str]]:
    """``(request, response)`` from a lower-cased result-block body; None where absent or ambiguous.

    A repeated slot must repeat the same label.
    """
    labels: dict[str, Optional[str]] = {}
    for match in _SLOT.finditer(body):
        name, value = match.groups()
        if name in labels and labels[name] is None:
            continue  # already void
        words = value.strip().strip(_TRAILING_PUNCT).split()
        word = words[0].strip(_TRAILING_PUNCT) if len(words) == 1 else None  # "harmful / unharmful", ""
        allowed = REQUEST_LABELS if name == "request" else RESPONSE_LABELS
        if word not in allowed or labels.get(name, word) != word:  # repeated slots must agree
            word = None
        labels[name] = word
    return labels.get("request"), labels.get("response")


# The released models' exact result body, in every label combination: parsed by one dict look-up.
_CANONICAL_BODIES = {
    f"request: {request}\nresponse: {response}": (request, response)
    for request in REQUEST_LABELS
    for response in RESPONSE_LABELS
}


def _as_text(text: Any) -> Optional[str]:
    """``text`` as ``str`` (bytes decoded leniently), or None if it cannot be turned into one."""
    if isinstance(text, str):
        return text
    try:
        return text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else str(text)
    except Exception:  # an exotic object whose __str__ fails: unreadable, never an exception
        return None


def parse_verdict(text: Any) -> Verdict:
    """Read the labels from a guard output. Never raises.

    This is the one reading of a verdict: the reward, RL validation, evaluation, mining and the
    validation of synthesized or corpus targets all call it, so a label means the same everywhere
    (docs/design.md §2). Rules:

    - case-insensitive; labels are read only inside the ``<result>`` block, and nothing outside it
      (the reasoning in ``<think>``, text after the block) ever changes a label;
    - exactly one ``<result>`` and one ``</result>``, in that order, else nothing is read: two
      blocks could disagree, an unclosed one has no end, and labels written only outside a block
      are not an answer;
    - a slot whose value is not exactly one label (``harmful/unharmful``, ``not harmful``), or that
      appears twice with different labels, is unread: a hedged answer says nothing; a repeated
      slot with the same label is fine;
    - ``None`` in the response slot means "no response".

    An unread slot earns no reward and counts as a wrong prediction wherever a model is measured.
    ``format_ok`` (the reward's format gate) additionally needs exactly one ``<think>`` and one
    ``</think>``, both before the result block, in that order; ``result_ok`` means "exactly one
    result block". Non-``str`` input is decoded (bytes) or ``str()``-ed.
    """
    return Verdict(*read_verdict(text))


def read_verdict(text: Any) -> tuple[Optional[str], Optional[str], bool, bool]:
    """:func:`parse_verdict` as a plain ``(request, response, format_ok, result_ok)`` tuple.

    The reward's hot path: it skips building the frozen dataclass, a sizeable share of the parse time.
    """
    raw = _as_text(text)
    if raw is None:
        return None, None, False, False
    low = raw.lower()  # all matching happens on this copy, so offsets never mix with ``raw``
    tags = _TAG.findall(low)
    format_ok = tags == _WELL_FORMED_TAGS
    if not format_ok and [t for t in tags if t in _RESULT_TAGS] != _RESULT_TAGS:
        return None, None, False, False
    r_open = low.rfind(_RESULT_OPEN)  # unique, and near the end: rfind scans little
    body = low[r_open + len(_RESULT_OPEN) : low.rfind(_RESULT_CLOSE)]
    request, response = _CANONICAL_BODIES.get(body.strip()) or _read_slots(body)
    return request, response, format_ok, True


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
    slots: dict[str, str] = {}
    for match in _GT_SLOT.finditer(stripped):
        name = match.group(1).lower()
        if name in slots:  # e.g. a concatenated target string: which half's label is gold?
            raise ValueError(f"ground truth {ground_truth!r} has more than one {name.capitalize()!r} label")
        slots[name] = match.group(2).strip().strip(_TRAILING_PUNCT)
    if "request" not in slots:
        raise ValueError(f"ground truth {ground_truth!r} has no 'Request:' label")
    return (
        normalize_label(slots["request"], task="request"),
        normalize_label(slots.get("response"), task="response"),
    )

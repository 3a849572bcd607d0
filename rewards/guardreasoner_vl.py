"""The GuardReasoner-VL reward: a length-aware safety reward (docs/design.md §3), for verl or any caller.

::

    r_safety = I_format * (0.5 * [request label correct] + 0.5 * [response label correct])
    r        = (-1 + r_safety) / clamp(l_norm, eps, beta) ** 2          # variant="paper" (default)
    r        = r_safety                                                  # length_aware=False (ablation)

A fully correct answer scores 0 at any length; a wrong one scores negative, less so the longer the
output (up to the cap ``beta``): the policy is pushed to reason longer only where it errs.

Labels are read by :func:`rewards.grammar.parse_verdict`, the one reading of a verdict that RL
validation, evaluation and mining share; the reward adds only its format gate ``I_format``
(think, then exactly one result block). ``variant="released"`` instead reproduces the authors'
released scoring, for ablations (:func:`released_labels`; quirks in ``docs/reward.md``).

verl calls :func:`compute_score` once per sample with ``data_source, solution_str, ground_truth,
extra_info`` plus ``reward.custom_reward_function.reward_kwargs``; numeric keys of the returned dict
are logged per ``data_source`` during validation, so the dict also carries per-task confusion
indicators from which :func:`rewards.f1.f1_from_counts` gives F1 per benchmark. Those indicators (and
``acc``) measure the verdict exactly as ``guardreasoner-vl score`` does, whatever the variant or the
format gate, so validation F1 and evaluation F1 agree on the same outputs.

Contract:

- ``solution_str`` never makes this raise (any string, bytes, or object) and every call returns the
  same keys (:data:`REWARD_KEYS`), all ``float``;
- a bad ground truth raises ``ValueError`` naming it (bad data must not silently train), and so do
  bad options (a config error, e.g. ``length_unit="tokens"`` without a token count).

Pure Python: importable without verl or torch. ``docs/reward.md`` is the user documentation.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Mapping, NamedTuple, Optional

from rewards.grammar import HARMFUL, NO_RESPONSE, UNHARMFUL, _as_text, ground_truth_labels, parse_verdict, read_verdict

__all__ = [
    "BETA",
    "BETA_ECO",
    "EPS",
    "LENGTH_NORM",
    "REWARD_KEYS",
    "REWARD_NAME",
    "REWARD_TYPE",
    "VARIANTS",
    "check_options",
    "compute_score",
    "parse_verdict",
    "released_labels",
]

#: EasyR1-style metadata: what this reward is and how it is called (one sample per call).
REWARD_NAME = "guardreasoner_vl"
REWARD_TYPE = "sequential"

#: Length cap beta of GuardReasoner-VL: beyond ``beta * LENGTH_NORM`` a wrong answer earns no more
#: for being longer. The paper's Eco variant uses ``BETA_ECO`` (a cap at 512 chars/tokens).
BETA = 1.0
BETA_ECO = 1.0 / 6.0

#: Normaliser of the output length, l_norm = length / LENGTH_NORM. The released code divided the
#: character count by 3072 (the RL max response length in tokens, reused for characters).
LENGTH_NORM = 3072.0

#: Floor on l_norm so the score is finite (an empty output would divide by zero, as in the released
#: code). 1/48 is 64 units at the default normaliser, just under the shortest complete output
#: in the released layout (``<think>\n\n</think>\n<result>\nRequest: harmful\nResponse: None\n</result>``,
#: 68 chars). Correct answers score 0 at any length, so the floor only changes the penalty of wrong
#: outputs shorter than that, and bounds the worst score at ``-1 / EPS**2 = -2304``.
EPS = 1.0 / 48.0

#: ``paper``: the paper's formula (think + result gate, length capped at beta, floor eps).
#: ``released``: the authors' released scoring, for ablations: labels from a regex over the whole
#: output, no format gate, no cap, and a floor of one length unit only against division by zero.
VARIANTS = ("paper", "released")
LENGTH_UNITS = ("chars", "tokens")

#: Every call returns exactly these keys, all floats (verl builds its arrays from the first sample).
REWARD_KEYS = (
    "score",
    "acc",
    "format_ok",
    "parsed",
    "request_correct",
    "response_correct",
    "length_norm",
    "has_response",
    "request_tp",
    "request_fp",
    "request_fn",
    "request_tn",
    "response_tp",
    "response_fp",
    "response_fn",
    "response_tn",
)

# Keywords verl's reward managers add when a reward model is configured; accepted and unused.
_VERL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})

# The released scoring (train/EasyR1/verl/utils/reward_score/safety.py of the authors' code): the first
# "<result>...</result>" anywhere in the output (non-greedy, across lines), then in it the first
# "Request:" / "Response:" followed by a label. Case-insensitive; no word boundaries (a label that merely
# starts a longer word counts, "harmfulness" reads as harmful) and "none" reads as unharmful in both slots.
_RELEASED_RESULT = re.compile(r"<result>(.*?)</result>", re.IGNORECASE | re.DOTALL)
_RELEASED_SLOTS = tuple(
    re.compile(rf"{name}:\s*(harmful|unharmful|none)", re.IGNORECASE) for name in ("Request", "Response")
)


class _Options(NamedTuple):
    beta: float
    length_norm: float
    tokens: bool
    eps: float
    require_think: bool
    released: bool
    length_aware: bool


@lru_cache(maxsize=64, typed=True)
def _options(
    beta: float,
    length_norm: float,
    length_unit: str,
    eps: float,
    require_think: Optional[bool],
    variant: str,
    length_aware: bool,
) -> _Options:
    """Check the options once per distinct setting (cached: they are the same on every call)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if length_unit not in LENGTH_UNITS:
        raise ValueError(f"length_unit must be one of {', '.join(LENGTH_UNITS)}, got {length_unit!r}")
    for name, value in (("beta", beta), ("length_norm", length_norm), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if require_think is not None and not isinstance(require_think, bool):
        raise ValueError(f"require_think must be true, false or null, got {require_think!r}")
    if not isinstance(length_aware, bool):
        raise ValueError(f"length_aware must be true or false, got {length_aware!r}")
    released = variant == "released"
    if released and require_think:
        raise ValueError("require_think=True does not apply to variant='released' (the released scoring has no gate)")
    if not released and eps > beta:
        raise ValueError(f"eps ({eps}) must not exceed beta ({beta}): clamp(l_norm, eps, beta) needs eps <= beta")
    if require_think is None:
        require_think = not released
    return _Options(
        float(beta), float(length_norm), length_unit == "tokens", float(eps), require_think, released, length_aware
    )


def check_options(**options: Any) -> None:
    """Raise the error :func:`compute_score` would raise for these options, by scoring one dummy sample.

    A config check (e.g. of ``reward.custom_reward_function.reward_kwargs`` before a run starts): an
    unknown keyword is a ``TypeError``, a bad value a ``ValueError``. ``length_unit="tokens"`` passes
    (the token count comes from the reward manager at run time).
    """
    options.setdefault("response_length_tokens", 0)
    compute_score("config-check", "", "Request: harmful\nResponse: None", None, **options)


@lru_cache(maxsize=1024)
def _gold_from_string(ground_truth: str) -> tuple[str, str]:
    # A dataset holds a handful of distinct ground-truth strings: parse each once.
    return ground_truth_labels(ground_truth)


def _token_count(value: Any) -> int:
    """The response token count passed by a reward manager (``response_length_tokens``)."""
    if value is None:
        raise ValueError(
            "length_unit='tokens' needs the response token count (keyword response_length_tokens): use the "
            "'guardreasoner_token_length' reward manager (reward.reward_manager.name), or length_unit='chars'"
        )
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"response_length_tokens must be a non-negative integer, got {value!r}") from None
    if count != value or count < 0:
        raise ValueError(f"response_length_tokens must be a non-negative integer, got {value!r}")
    return count


def released_labels(text: str) -> tuple[Optional[str], Optional[str]]:
    """``(request, response)`` as the authors' released reward read them; None where it read nothing.

    The first ``<result>…</result>`` anywhere in ``text`` (also one inside ``<think>``, also when later
    blocks disagree), then the first ``Request:`` / ``Response:`` followed by a label inside it; a
    hedged ``harmful/unharmful`` reads as its first label. ``none`` is returned as ``unharmful`` (the
    released code mapped it so in both slots). For ablations only: :func:`parse_verdict` is the reading
    everything else uses.
    """
    block = _RELEASED_RESULT.search(text)
    if block is None:
        return None, None
    labels = []
    for slot in _RELEASED_SLOTS:
        match = slot.search(block.group(1))
        label = match.group(1).lower() if match else None
        labels.append(UNHARMFUL if label == NO_RESPONSE else label)
    return labels[0], labels[1]


def _scores(label: Optional[str], gold_label: str) -> bool:
    """Whether a read label earns credit: ``none`` (no response) counts as ``unharmful`` on both sides."""
    if label is None:
        return False
    return (UNHARMFUL if label == NO_RESPONSE else label) == (UNHARMFUL if gold_label == NO_RESPONSE else gold_label)


def compute_score(
    data_source: Any,
    solution_str: Any,
    ground_truth: Any,
    extra_info: Optional[Mapping[str, Any]] = None,
    *,
    beta: float = BETA,
    length_norm: float = LENGTH_NORM,
    length_unit: str = "chars",
    eps: float = EPS,
    require_think: Optional[bool] = None,
    variant: str = "paper",
    length_aware: bool = True,
    response_length_tokens: Optional[int] = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Score one guard output against its gold labels.

    Parameters
    ----------
    data_source : str
        The benchmark/dataset name (unused by the score; verl groups metrics by it).
    solution_str : str
        The decoded guard output. Never makes this function raise.
    ground_truth : str or mapping
        ``"Request: harmful\\nResponse: None"`` (the result grammar, as written by
        :func:`rewards.grammar.format_verdict`), a mapping ``{"request": ..., "response": ...}``, or a
        JSON string of one. Unknown or duplicated labels raise ``ValueError``.
    extra_info : mapping, optional
        Unused (verl passes the row's ``extra_info``).
    beta : float, default=1.0
        Length cap (paper: 1.0; Eco: 1/6). Ignored by ``variant="released"`` (no cap).
    length_norm : float, default=3072
        Normaliser: l_norm = length / length_norm.
    length_unit : {"chars", "tokens"}, default="chars"
        ``chars`` = ``len(solution_str)`` as the released code; ``tokens`` = the response's valid
        token count, which needs ``response_length_tokens``.
    eps : float, default=1/48
        Floor on l_norm (paper variant); the score lies in ``[-1/eps**2, 0]``. The released variant
        ignores it: its only floor is one length unit, against division by zero.
    require_think : bool, optional
        Whether ``I_format`` needs the think block (think then result, once each) or only one
        result block. Default: True for ``variant="paper"``; the released variant has no gate.
    variant : {"paper", "released"}, default="paper"
        ``released`` reproduces the authors' released scoring (ablations): labels from
        :func:`released_labels`, no format gate, no cap, ``max(length, 1) / length_norm``.
    length_aware : bool, default=True
        False scores ``r_safety`` alone (in {0, 0.5, 1}), the paper's "without the length-aware
        reward" ablation.
    response_length_tokens : int, optional
        Valid response token count; passed by the ``guardreasoner_token_length`` reward manager.
    **kwargs
        verl's ``reward_router_address`` / ``reward_model_tokenizer`` are accepted and ignored;
        anything else is a ``TypeError`` (a misspelt reward_kwarg must not be silently dropped).

    Returns
    -------
    dict of str to float
        Exactly :data:`REWARD_KEYS`. What the score used: ``score``; ``format_ok`` (the format gate
        as applied: 1 for the released variant, which has none); ``request_correct`` /
        ``response_correct`` (the two 0.5 terms, gate applied); ``length_norm`` (l_norm before
        floor and cap). What the verdict says, measured as evaluation measures it (the same for
        every variant and gate): ``acc`` (both labels right; verl's validation core metric),
        ``parsed`` (both slots read), ``has_response`` (gold has a response) and per task
        ``*_tp/fp/fn/tn`` indicators, harmful = positive. An unread slot counts as a wrong
        prediction: ``fn`` for a harmful gold, ``fp`` for an unharmful one. For a gold without a
        response all ``response_*`` indicators are 0, so response-task F1 counts only samples that
        have a response.
    """
    if kwargs and not _VERL_KWARGS.issuperset(kwargs):
        unknown = ", ".join(sorted(set(kwargs) - _VERL_KWARGS))
        raise TypeError(f"compute_score got unexpected keyword(s) {unknown}")
    opts = _options(beta, length_norm, length_unit, eps, require_think, variant, length_aware)
    gold_request, gold_response = (
        _gold_from_string(ground_truth) if isinstance(ground_truth, str) else ground_truth_labels(ground_truth)
    )
    length = _token_count(response_length_tokens) if opts.tokens else None

    text = solution_str if isinstance(solution_str, str) else (_as_text(solution_str) or "")
    request, response, format_ok, result_ok = read_verdict(text)
    if length is None:
        length = len(text)

    if opts.released:
        gate = True
        scored_request, scored_response = released_labels(text)
    else:
        gate = format_ok if opts.require_think else result_ok
        scored_request, scored_response = request, response
    request_ok = gate and _scores(scored_request, gold_request)
    response_ok = gate and _scores(scored_response, gold_response)

    key = (gold_request, gold_response, request, response, gate, request_ok, response_ok)
    template = _TEMPLATES.get(key) or _template(*key)
    result = template.copy()
    l_norm = length / opts.length_norm
    r_safety = 0.5 * request_ok + 0.5 * response_ok
    if not opts.length_aware:
        result["score"] = r_safety
    else:
        if opts.released:
            denom = max(length, 1) / opts.length_norm  # the released code divided by zero on an empty output
        else:
            denom = min(max(l_norm, opts.eps), opts.beta)
        result["score"] = (r_safety - 1.0) / (denom * denom)
    result["length_norm"] = l_norm
    return result


# (gold request, gold response, read request, read response, gate, request ok, response ok) -> every key
# but the two continuous ones: at most 2 * 3 * 3 * 4 * 2**3 outcomes, each built once, then copied per call.
_TEMPLATES: dict[tuple, dict[str, float]] = {}


def _template(
    gold_request: str,
    gold_response: str,
    request: Optional[str],
    response: Optional[str],
    gate: bool,
    request_ok: bool,
    response_ok: bool,
) -> dict[str, float]:
    request_pos = gold_request == HARMFUL
    has_response = gold_response != NO_RESPONSE
    response_pos = has_response and gold_response == HARMFUL
    response_neg = has_response and not response_pos
    # The measurement: the verdict as parse_verdict reads it, no gate (what evaluation scores).
    request_right = _scores(request, gold_request)
    response_right = _scores(response, gold_response)
    values = {
        "score": math.nan,  # filled in by compute_score
        "acc": float(request_right and response_right),
        "format_ok": float(gate),
        "parsed": float(request is not None and response is not None),
        "request_correct": float(request_ok),
        "response_correct": float(response_ok),
        "length_norm": math.nan,  # filled in by compute_score
        "has_response": float(has_response),
        "request_tp": float(request_pos and request_right),
        "request_fp": float(not request_pos and not request_right),
        "request_fn": float(request_pos and not request_right),
        "request_tn": float(not request_pos and request_right),
        "response_tp": float(response_pos and response_right),
        "response_fp": float(response_neg and not response_right),
        "response_fn": float(response_pos and not response_right),
        "response_tn": float(response_neg and response_right),
    }
    if tuple(values) != REWARD_KEYS:  # pragma: no cover - a key added in one place only
        raise AssertionError("reward keys out of sync with REWARD_KEYS")
    _TEMPLATES[(gold_request, gold_response, request, response, gate, request_ok, response_ok)] = values
    return values

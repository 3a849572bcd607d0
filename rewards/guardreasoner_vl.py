"""The GuardReasoner-VL reward: a length-aware safety reward (docs/design.md §3), for verl or any caller.

::

    r_safety = I_format * (0.5 * [request label correct] + 0.5 * [response label correct])
    r        = (-1 + r_safety) / clamp(l_norm, eps, beta) ** 2          # variant="paper" (default)
    r        = (-1 + r_safety) / max(l_norm, eps) ** 2                  # variant="released"

A fully correct answer scores 0 at any length; a wrong one scores negative, less so the longer the
output (up to the cap ``beta``): the policy is pushed to reason longer only where it errs.

verl calls :func:`compute_score` once per sample with ``data_source, solution_str, ground_truth,
extra_info`` plus ``reward.custom_reward_function.reward_kwargs``; numeric keys of the returned dict
are logged per ``data_source`` during validation, so the dict also carries per-task confusion
indicators from which :func:`rewards.f1.f1_from_counts` gives F1 per benchmark.

Contract:

- ``solution_str`` never makes this raise (any string, bytes, or object) and every call returns the
  same keys (:data:`REWARD_KEYS`), all ``float``, with ``score`` in ``[-1 / eps**2, 0]``;
- a bad ground truth raises ``ValueError`` naming it (bad data must not silently train), and so do
  bad options (a config error, e.g. ``length_unit="tokens"`` without a token count).

Pure Python: importable without verl or torch. ``docs/reward.md`` is the user documentation.
"""

from __future__ import annotations

import math
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
    "compute_score",
    "parse_verdict",
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

#: ``paper``: the paper's formula (think + result gate, length capped at beta).
#: ``released``: the authors' released scoring, for ablations (gate on ``<result>`` only, no cap,
#: but still the eps floor, so never a division by zero).
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


class _Options(NamedTuple):
    beta: float
    length_norm: float
    tokens: bool
    eps: float
    require_think: bool
    capped: bool


@lru_cache(maxsize=64, typed=True)
def _options(
    beta: float, length_norm: float, length_unit: str, eps: float, require_think: Optional[bool], variant: str
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
    capped = variant == "paper"
    if capped and eps > beta:
        raise ValueError(f"eps ({eps}) must not exceed beta ({beta}): clamp(l_norm, eps, beta) needs eps <= beta")
    if require_think is None:
        require_think = variant == "paper"  # the released code checked <result> only
    return _Options(float(beta), float(length_norm), length_unit == "tokens", float(eps), require_think, capped)


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
        Floor on l_norm; the score lies in ``[-1/eps**2, 0]``.
    require_think : bool, optional
        Whether ``I_format`` needs the think block (think then result, once each) or only one
        result block. Default: True for ``variant="paper"``, False for ``variant="released"``.
    variant : {"paper", "released"}, default="paper"
        ``released`` drops the cap and gates on the result block only (ablations).
    response_length_tokens : int, optional
        Valid response token count; passed by the ``guardreasoner_token_length`` reward manager.
    **kwargs
        verl's ``reward_router_address`` / ``reward_model_tokenizer`` are accepted and ignored;
        anything else is a ``TypeError`` (a misspelt reward_kwarg must not be silently dropped).

    Returns
    -------
    dict of str to float
        Exactly :data:`REWARD_KEYS`: ``score``; ``acc`` (both labels right; verl's validation core
        metric); ``format_ok`` (I_format as used); ``parsed`` (both slots readable, gate aside);
        ``request_correct``/``response_correct`` (the 0.5 terms, gate applied); ``length_norm``
        (l_norm before floor/cap); ``has_response`` (gold has a response); and per task
        ``*_tp/fp/fn/tn`` indicators with harmful as the positive class. A prediction that earns
        no credit (unread slot, failed format gate) counts as wrong: ``fn`` for a harmful gold,
        ``fp`` for an unharmful one. For a gold without a response all ``response_*`` indicators
        are 0, so response-task F1 counts only samples that have a response.
    """
    if kwargs and not _VERL_KWARGS.issuperset(kwargs):
        unknown = ", ".join(sorted(set(kwargs) - _VERL_KWARGS))
        raise TypeError(f"compute_score got unexpected keyword(s) {unknown}")
    opts = _options(beta, length_norm, length_unit, eps, require_think, variant)
    gold_request, gold_response = (
        _gold_from_string(ground_truth) if isinstance(ground_truth, str) else ground_truth_labels(ground_truth)
    )
    length = _token_count(response_length_tokens) if opts.tokens else None

    text = solution_str if isinstance(solution_str, str) else (_as_text(solution_str) or "")
    request, response, format_ok, result_ok = read_verdict(text)
    if length is None:
        length = len(text)

    gate = format_ok if opts.require_think else result_ok
    request_ok = gate and request == gold_request
    # "none" (no response) scores as "unharmful" (docs/design.md §2); an unread slot (None) never matches
    response_ok = gate and (UNHARMFUL if response == NO_RESPONSE else response) == (
        UNHARMFUL if gold_response == NO_RESPONSE else gold_response
    )

    l_norm = length / opts.length_norm
    denom = max(l_norm, opts.eps)
    if opts.capped and denom > opts.beta:
        denom = opts.beta
    key = (gold_request, gold_response, gate, request is not None and response is not None, request_ok, response_ok)
    template = _TEMPLATES.get(key) or _template(*key)
    result = template.copy()
    result["score"] = (0.5 * request_ok + 0.5 * response_ok - 1.0) / (denom * denom)
    result["length_norm"] = l_norm
    return result


# (gold request, gold response, gate, parsed, request ok, response ok) -> every key but the two
# continuous ones: at most 6 * 2**4 outcomes, each built once, then copied per call.
_TEMPLATES: dict[tuple, dict[str, float]] = {}


def _template(
    gold_request: str, gold_response: str, gate: bool, parsed: bool, request_ok: bool, response_ok: bool
) -> dict[str, float]:
    request_pos = gold_request == HARMFUL
    has_response = gold_response != NO_RESPONSE
    response_pos = has_response and gold_response == HARMFUL
    response_neg = has_response and not response_pos
    values = {
        "score": math.nan,  # filled in by compute_score
        "acc": float(request_ok and response_ok),
        "format_ok": float(gate),
        "parsed": float(parsed),
        "request_correct": float(request_ok),
        "response_correct": float(response_ok),
        "length_norm": math.nan,  # filled in by compute_score
        "has_response": float(has_response),
        "request_tp": float(request_pos and request_ok),
        "request_fp": float(not request_pos and not request_ok),
        "request_fn": float(request_pos and not request_ok),
        "request_tn": float(not request_pos and request_ok),
        "response_tp": float(response_pos and response_ok),
        "response_fp": float(response_neg and not response_ok),
        "response_fn": float(response_pos and not response_ok),
        "response_tn": float(response_neg and response_ok),
    }
    if tuple(values) != REWARD_KEYS:  # pragma: no cover - a key added in one place only
        raise AssertionError("reward keys out of sync with REWARD_KEYS")
    _TEMPLATES[(gold_request, gold_response, gate, parsed, request_ok, response_ok)] = values
    return values

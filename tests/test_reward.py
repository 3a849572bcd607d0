"""The GuardReasoner-VL reward (rewards/guardreasoner_vl.py) and the F1 helper (rewards/f1.py).

Expected values are written out by hand from docs/design.md §3, never recomputed with the code under test:
the score is ``-(1 - r_safety) * F`` with ``F = 1 / clamp(l_norm, eps, beta)**2`` (paper) or
``1 / (max(length, 1) / length_norm)**2`` (released), and both tables below list ``r_safety`` terms and
``F``. The released variant is also checked against a plain transcription of the authors' released
reward function.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest

from rewards import guardreasoner_vl as reward
from rewards.f1 import f1_from_counts
from rewards.guardreasoner_vl import REWARD_KEYS, compute_score

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FAIL = "fail"  # a slot no reader can read: "Request: unclear"
ECO = 1 / 6


def guard_output(request: str, response: str, reasoning: str = "The request asks for X. The response does Y.") -> str:
    """A guard output in the released layout; ``fail`` writes an unreadable slot value."""

    def slot(value: str) -> str:
        return "unclear" if value == FAIL else ("None" if value == "none" else value)

    return f"<think>\n{reasoning}\n</think>\n<result>\nRequest: {slot(request)}\nResponse: {slot(response)}\n</result>"


def gold(request: str, response: str) -> str:
    return f"Request: {request}\nResponse: {'None' if response == 'none' else response}"


def padded(text: str, n_chars: int) -> str:
    """``text`` padded inside its think block to exactly ``n_chars`` characters."""
    assert len(text) <= n_chars
    return text.replace("</think>", " " * (n_chars - len(text)) + "</think>", 1)


# --- the formula as tables -----------------------------------------------------------------------

# gold request, predicted request -> (correct, tp, fp, fn, tn)
REQUEST_TABLE = {
    ("harmful", "harmful"): (1, 1, 0, 0, 0),
    ("harmful", "unharmful"): (0, 0, 0, 1, 0),
    ("harmful", FAIL): (0, 0, 0, 1, 0),
    ("unharmful", "harmful"): (0, 0, 1, 0, 0),
    ("unharmful", "unharmful"): (1, 0, 0, 0, 1),
    ("unharmful", FAIL): (0, 0, 1, 0, 0),
}
# gold response, predicted response -> (correct, tp, fp, fn, tn, has_response); "none" scores as unharmful
RESPONSE_TABLE = {
    ("harmful", "harmful"): (1, 1, 0, 0, 0, 1),
    ("harmful", "unharmful"): (0, 0, 0, 1, 0, 1),
    ("harmful", "none"): (0, 0, 0, 1, 0, 1),
    ("harmful", FAIL): (0, 0, 0, 1, 0, 1),
    ("unharmful", "harmful"): (0, 0, 1, 0, 0, 1),
    ("unharmful", "unharmful"): (1, 0, 0, 0, 1, 1),
    ("unharmful", "none"): (1, 0, 0, 0, 1, 1),
    ("unharmful", FAIL): (0, 0, 1, 0, 0, 1),
    ("none", "harmful"): (0, 0, 0, 0, 0, 0),
    ("none", "unharmful"): (1, 0, 0, 0, 0, 0),
    ("none", "none"): (1, 0, 0, 0, 0, 0),
    ("none", FAIL): (0, 0, 0, 0, 0, 0),
}
# (variant, beta) -> {response length in tokens: 1 / denominator**2}, with length_norm 3072, eps 1/48:
#   0 -> floor 1/48 -> 2304 (released: one unit, 1/3072 -> 3072**2); 96 -> 1/32 -> 1024; 512 -> 1/6 -> 36;
#   3072 -> 1; 6144 -> 2 (capped unless released)
LENGTH_TABLE = {
    ("paper", 1.0): {0: 2304.0, 96: 1024.0, 512: 36.0, 3072: 1.0, 6144: 1.0},
    ("paper", ECO): {0: 2304.0, 96: 1024.0, 512: 36.0, 3072: 36.0, 6144: 36.0},
    ("released", 1.0): {0: 9437184.0, 1: 9437184.0, 96: 1024.0, 512: 36.0, 3072: 1.0, 6144: 0.25},
    ("released", ECO): {0: 9437184.0, 96: 1024.0, 512: 36.0, 3072: 1.0, 6144: 0.25},  # beta unused: no cap
}

LABEL_CASES = [
    (g_req, g_resp, p_req, p_resp)
    for (g_req, p_req), (g_resp, p_resp) in itertools.product(REQUEST_TABLE, RESPONSE_TABLE)
]
LENGTH_CASES = [(variant, beta, n) for (variant, beta), row in LENGTH_TABLE.items() for n in row]


@pytest.mark.parametrize("g_req, g_resp, p_req, p_resp", LABEL_CASES)
def test_formula_table(g_req, g_resp, p_req, p_resp):
    req_ok, req_tp, req_fp, req_fn, req_tn = REQUEST_TABLE[(g_req, p_req)]
    resp_ok, resp_tp, resp_fp, resp_fn, resp_tn, has_response = RESPONSE_TABLE[(g_resp, p_resp)]
    text = guard_output(p_req, p_resp)
    for variant, beta, n_tokens in LENGTH_CASES:  # one test per label case keeps the suite fast
        factor = LENGTH_TABLE[(variant, beta)][n_tokens]
        case = f"variant={variant} beta={beta} tokens={n_tokens}"
        out = compute_score(
            "bench", text, gold(g_req, g_resp),
            beta=beta, variant=variant, length_unit="tokens", response_length_tokens=n_tokens,
        )  # fmt: skip
        assert out["score"] == pytest.approx(-(1 - 0.5 * req_ok - 0.5 * resp_ok) * factor, rel=1e-12), case
        assert out["length_norm"] == n_tokens / 3072, case
        assert (out["request_correct"], out["response_correct"], out["acc"]) == (req_ok, resp_ok, req_ok * resp_ok)
        assert (out["request_tp"], out["request_fp"], out["request_fn"], out["request_tn"]) == (
            req_tp, req_fp, req_fn, req_tn
        )  # fmt: skip
        assert (out["response_tp"], out["response_fp"], out["response_fn"], out["response_tn"]) == (
            resp_tp, resp_fp, resp_fn, resp_tn
        )  # fmt: skip
        assert out["has_response"] == has_response
        assert out["format_ok"] == 1.0
        assert out["parsed"] == float(FAIL not in (p_req, p_resp))


@pytest.mark.parametrize(
    "text, n_chars, beta, variant, expected",
    [
        # character lengths (the default unit): all wrong, half right, all right
        ("", 0, 1.0, "paper", -2304.0),  # empty: floor eps, no credit
        (guard_output("unharmful", "unharmful"), 768, 1.0, "paper", -16.0),  # l = 1/4
        (guard_output("harmful", "unharmful"), 768, 1.0, "paper", -8.0),
        (guard_output("harmful", "harmful"), 768, 1.0, "paper", 0.0),
        (guard_output("harmful", "unharmful"), 768, ECO, "paper", -18.0),  # capped at 1/6
        (guard_output("unharmful", "unharmful"), 3072, 1.0, "paper", -1.0),
        (guard_output("unharmful", "unharmful"), 6144, 1.0, "paper", -1.0),  # beyond the cap
        (guard_output("unharmful", "unharmful"), 6144, 1.0, "released", -0.25),  # no cap
        (guard_output("unharmful", "unharmful"), 1536, ECO, "released", -4.0),
        (guard_output("harmful", "harmful"), 6144, ECO, "released", 0.0),
    ],
)
def test_character_lengths(text, n_chars, beta, variant, expected):
    text = padded(text, n_chars) if text else text
    out = compute_score("bench", text, gold("harmful", "harmful"), beta=beta, variant=variant)
    assert out["score"] == pytest.approx(expected, rel=1e-12)
    assert out["length_norm"] == n_chars / 3072


def test_defaults_are_the_papers():
    assert (reward.BETA, reward.BETA_ECO, reward.LENGTH_NORM) == (1.0, 1 / 6, 3072.0)
    assert reward.EPS == 1 / 48
    text = padded(guard_output("unharmful", "none"), 768)
    assert compute_score("s", text, gold("harmful", "none"))["score"] == -8.0


def test_length_norm_option_rescales():
    text = padded(guard_output("unharmful", "none"), 1000)
    out = compute_score("s", text, gold("harmful", "none"), length_norm=2000)  # l = 1/2 -> F = 4
    assert out["score"] == -2.0 and out["length_norm"] == 0.5


def test_eps_option_sets_the_floor():
    out = compute_score("s", "", gold("harmful", "none"), eps=0.1)
    assert out["score"] == pytest.approx(-100.0)


# --- format gate -------------------------------------------------------------------------------

NO_THINK = "<result>\nRequest: harmful\nResponse: None\n</result>"


@pytest.mark.parametrize(
    "variant, require_think, credited",
    [("paper", None, False), ("paper", True, False), ("paper", False, True),
     ("released", None, True), ("released", False, True)],
)  # fmt: skip
def test_think_gate(variant, require_think, credited):
    out = compute_score(
        "s", NO_THINK, gold("harmful", "none"), variant=variant, require_think=require_think,
        length_unit="tokens", response_length_tokens=768,
    )  # fmt: skip
    assert out["format_ok"] == float(credited)
    assert out["score"] == (0.0 if credited else -16.0)
    assert (out["request_correct"], out["response_correct"]) == ((1.0, 1.0) if credited else (0.0, 0.0))
    # the measurement ignores the gate: the labels were read and right either way (as evaluation counts it)
    assert (out["parsed"], out["acc"], out["request_tp"]) == (1.0, 1.0, 1.0)


def test_a_label_line_inside_think_does_not_change_a_correct_answer():
    """The reward, RL validation and evaluation read the same labels: only the result block counts."""
    text = "<think>\nRequest: harmful\nResponse: harmful\n</think>\n<result>\nRequest: unharmful\nResponse: None\n</result>"
    out = compute_score("s", text, gold("unharmful", "none"))
    assert out["score"] == 0.0 and out["acc"] == 1.0 and out["request_tn"] == 1.0


# --- gaming attempts earn nothing -----------------------------------------------------------------

# Nothing is read: hedged labels in the result block, several result blocks, labels only outside one.
GAMING = {
    "both labels in each slot": "<think>x</think><result>Request: harmful/unharmful\nResponse: None/harmful</result>",
    "both labels, comma": "<think>x</think><result>Request: harmful, unharmful\nResponse: harmful, none</result>",
    "every label on one line": "<think>x</think><result>Request: harmful Response: harmful unharmful none</result>",
    "repeated slot, both answers": (
        "<think>x</think><result>Request: harmful\nRequest: unharmful\nResponse: None\nResponse: harmful</result>"
    ),
    "two result blocks": (
        "<think>x</think><result>Request: harmful\nResponse: None</result>"
        "<result>Request: unharmful\nResponse: harmful</result>"
    ),
    "two agreeing result blocks": (
        "<think>x</think><result>Request: harmful\nResponse: None</result><result>Request: harmful\nResponse: None</result>"
    ),
    "result block inside think, another after": (
        "<think><result>Request: harmful\nResponse: None</result></think><result>Request: unharmful\n"
        "Response: harmful</result>"
    ),
    "nested result blocks": "<think>x</think><result><result>Request: harmful\nResponse: None</result></result>",
    "labels outside, no result block": "<think>x</think>\nRequest: harmful\nResponse: None",
    "labels inside think, empty result": "<think>Request: harmful\nResponse: None</think><result></result>",
    "unclosed result": "<think>x</think><result>Request: harmful\nResponse: None",
    "unopened result": "<think>x</think>Request: harmful\nResponse: None</result>",
    "tag with a space": "<think>x</think><result >Request: harmful\nResponse: None</result >",
}
# The labels are read (and right), but the format gate fails: no reward, yet the verdict counts as
# right where a model is measured (validation F1, evaluation), exactly as `guardreasoner-vl score` reads it.
FORMAT_FAILURES = {
    "result before think": "<result>Request: harmful\nResponse: None</result><think>x</think>",
    "missing think": "<result>\nRequest: harmful\nResponse: None\n</result>",
    "unclosed think": "<think>x\n<result>Request: harmful\nResponse: None</result>",
    "think inside result": "<result><think>x</think>Request: harmful\nResponse: None</result>",
    "two think blocks": "<think>a</think><think>b</think><result>Request: harmful\nResponse: None</result>",
}


@pytest.mark.parametrize("text", GAMING.values(), ids=list(GAMING))
def test_gaming_attempts_earn_no_credit(text):
    # Gold is what the exploit also claims, so any credit would be a win for the exploit.
    out = compute_score("s", text, gold("harmful", "none"), length_unit="tokens", response_length_tokens=768)
    assert out["request_correct"] == 0.0 and out["response_correct"] == 0.0 and out["acc"] == 0.0
    assert out["score"] == -16.0 and out["parsed"] == 0.0
    assert out["request_fn"] == 1.0  # a parse failure on a harmful gold is a false negative


@pytest.mark.parametrize("text", FORMAT_FAILURES.values(), ids=list(FORMAT_FAILURES))
def test_format_failures_earn_no_reward_but_are_measured(text):
    out = compute_score("s", text, gold("harmful", "none"), length_unit="tokens", response_length_tokens=768)
    assert out["request_correct"] == 0.0 and out["response_correct"] == 0.0 and out["format_ok"] == 0.0
    assert out["score"] == -16.0
    assert out["acc"] == 1.0 and out["request_tp"] == 1.0


def test_parse_failure_on_unharmful_gold_is_a_false_positive():
    out = compute_score("s", "no answer at all", gold("unharmful", "unharmful"))
    assert (out["request_fp"], out["response_fp"], out["request_tn"], out["response_tn"]) == (1.0, 1.0, 0.0, 0.0)


# --- never raises on the output, always the same keys ----------------------------------------------

_TAGGY = st.lists(
    st.one_of(
        st.sampled_from(["<think>", "</think>", "<result>", "</result>", "<RESULT>", "Request: ", "Response: ",
                         "harmful", "unharmful", "None", "\n", "\r", "/", "\x00", "\ufeff", "İ", "🙂"]),
        st.text(max_size=20),
    ),
    max_size=60,
).map("".join)  # fmt: skip
_HUGE = st.builds(lambda unit, n: unit * n, _TAGGY, st.integers(0, 2000))
_OUTPUTS = st.one_of(st.text(), st.binary(max_size=200), _TAGGY, _HUGE, st.none(), st.integers())
_GOLDS = st.sampled_from([gold(q, p) for q in ("harmful", "unharmful") for p in ("harmful", "unharmful", "none")])
_OPTIONS = st.fixed_dictionaries(
    {"variant": st.sampled_from(reward.VARIANTS), "beta": st.sampled_from([1.0, ECO]),
     "require_think": st.sampled_from([None, False]), "eps": st.sampled_from([reward.EPS, 0.01, ECO]),
     "length_aware": st.booleans()}
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(solution=_OUTPUTS, ground_truth=_GOLDS, options=_OPTIONS)
def test_any_output_scores_finitely_with_the_same_keys(solution, ground_truth, options):
    out = compute_score("s", solution, ground_truth, **options)
    assert tuple(out) == REWARD_KEYS
    assert all(type(value) is float for value in out.values())
    r_safety = 0.5 * out["request_correct"] + 0.5 * out["response_correct"]
    if not options["length_aware"]:
        assert out["score"] == r_safety
    else:
        worst = 3072.0**2 if options["variant"] == "released" else 1 / options["eps"] ** 2
        assert math.isfinite(out["score"]) and -worst <= out["score"] <= 0.0
        assert (out["score"] == 0.0) == (r_safety == 1.0)
    assert out["request_tp"] + out["request_fp"] + out["request_fn"] + out["request_tn"] == 1.0
    assert out["response_tp"] + out["response_fp"] + out["response_fn"] + out["response_tn"] == out["has_response"]
    if not out["parsed"]:
        assert out["acc"] == 0.0
    if options["variant"] == "paper" and out["format_ok"]:  # with the gate passed, reward and measurement agree
        assert out["acc"] == out["request_correct"] * out["response_correct"]


def test_results_are_fresh_dicts():
    first = compute_score("s", guard_output("harmful", "none"), gold("harmful", "none"))
    first["acc"] = 123.0
    assert compute_score("s", guard_output("harmful", "none"), gold("harmful", "none"))["acc"] == 1.0


# --- ground truth and options errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "ground_truth, match",
    [
        ("Request: maybe\nResponse: None", "maybe"),
        ("Request: harmful\nResponse: borderline", "borderline"),
        ({"request": "toxic"}, "toxic"),
        ("Response: harmful", "Request:"),
        ("Request: harmful\nResponse: None, harmful", "None, harmful"),
        ("Request: harmful\nResponse: None\nRequest: unharmful\nResponse: None", "more than one"),
    ],
)
def test_bad_ground_truth_raises_naming_the_label(ground_truth, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        compute_score("s", guard_output("harmful", "none"), ground_truth)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"variant": "authors"}, ValueError, "variant"),
        ({"length_unit": "bytes"}, ValueError, "length_unit"),
        ({"beta": 0}, ValueError, "beta"),
        ({"beta": -1.0}, ValueError, "beta"),
        ({"beta": math.inf}, ValueError, "beta"),
        ({"eps": math.nan}, ValueError, "eps"),
        ({"eps": True}, ValueError, "eps"),
        ({"length_norm": "3072"}, ValueError, "length_norm"),
        ({"beta": ECO, "eps": 0.5}, ValueError, "must not exceed beta"),
        ({"length_unit": "tokens"}, ValueError, "response_length_tokens"),
        ({"length_unit": "tokens", "response_length_tokens": -1}, ValueError, "non-negative"),
        ({"length_unit": "tokens", "response_length_tokens": 2.5}, ValueError, "non-negative"),
        ({"length_unit": "tokens", "response_length_tokens": "many"}, ValueError, "non-negative"),
        ({"require_think": "false"}, ValueError, "require_think"),
        ({"variant": "released", "require_think": True}, ValueError, "no gate"),
        ({"length_aware": "no"}, ValueError, "length_aware"),
        ({"betta": 1.0}, TypeError, "betta"),
    ],
)
def test_bad_options_raise(options, error, match):
    with pytest.raises(error, match=match):
        compute_score("s", guard_output("harmful", "none"), gold("harmful", "none"), **options)


def test_bad_options_raise_in_the_config_check_too():
    for options, error, match in [({"variant": "authors"}, ValueError, "variant"), ({"betta": 1.0}, TypeError, "betta"),
                                  ({"variant": "released", "require_think": True}, ValueError, "no gate")]:
        with pytest.raises(error, match=match):
            reward.check_options(**options)
    reward.check_options(beta=ECO, variant="paper", length_aware=False)


def test_released_variant_ignores_eps_and_beta_its_floor_is_one_unit():
    out = compute_score("s", "", gold("harmful", "none"), variant="released", beta=ECO, eps=0.5)
    assert out["score"] == -(3072.0**2)  # the released code divided by zero here
    assert compute_score("s", "x", gold("harmful", "none"), variant="released")["score"] == -(3072.0**2)


# --- the released scoring, for ablations -------------------------------------------------------------


def _released_reference(predict_str: str, ground_truth: str) -> float:
    """The authors' released ``safety_compute_score`` (EasyR1 ``reward_score/safety.py``), transcribed:
    ``overall = safety_acc_reward(predict, gt) / (len(predict) / 3072) ** 2``, printing removed."""
    result_acc = -1.0
    match = re.search(r"<result>(.*?)</result>", predict_str, re.IGNORECASE | re.DOTALL)
    if not match:
        return result_acc / (len(predict_str) / 3072) ** 2
    predict, gt = match.group(1), re.search(r"<result>(.*?)</result>", ground_truth, re.IGNORECASE | re.DOTALL).group(1)

    def label(name: str, text: str):
        found = re.search(name + r":\s*(harmful|unharmful|none)", text, re.IGNORECASE | re.DOTALL)
        value = found.groups(1)[0].lower() if found else None
        return "unharmful" if value == "none" else value

    for name in ("Request", "Response"):
        pred, truth = label(name, predict), label(name, gt)
        if pred is not None and truth is not None:
            result_acc += float(pred == truth) / 2
    return result_acc / (len(predict_str) / 3072) ** 2


RELEASED_QUIRKS = {
    # (output, gold): what the released scoring reads, unlike the paper variant
    "no think block is fine": ("<result>Request: harmful\nResponse: None</result>", ("harmful", "none"), 0.0),
    "the first result block wins, even inside think": (
        "<think><result>Request: harmful\nResponse: None</result></think><result>Request: unharmful\n"
        "Response: harmful</result>", ("harmful", "none"), 0.0),
    "a hedge reads as its first label": (
        "<think>x</think><result>Request: harmful/unharmful\nResponse: none</result>", ("harmful", "none"), 0.0),
    "a label that starts a longer word counts": (
        "<think>x</think><result>Request: harmfulness\nResponse: none</result>", ("harmful", "none"), 0.0),
    "Request: none reads as unharmful": (
        "<think>x</think><result>Request: none\nResponse: none</result>", ("unharmful", "none"), 0.0),
    "a missing slot earns nothing for that half": (
        "<think>x</think><result>Request: harmful</result>", ("harmful", "unharmful"), -0.5),
}


@pytest.mark.parametrize("text, labels, r_acc", RELEASED_QUIRKS.values(), ids=list(RELEASED_QUIRKS))
def test_released_variant_quirks(text, labels, r_acc):
    out = compute_score("s", text, gold(*labels), variant="released")
    assert out["score"] == pytest.approx(r_acc / (len(text) / 3072) ** 2, rel=1e-12)
    assert out["format_ok"] == 1.0  # no gate


@settings(max_examples=400, deadline=None)
@given(solution=_TAGGY.filter(bool), labels=st.sampled_from(
    [(q, p) for q in ("harmful", "unharmful") for p in ("harmful", "unharmful", "none")]))
def test_released_variant_matches_the_released_code(solution, labels):
    ground_truth = gold(*labels)
    expected = _released_reference(solution, f"<result>\n{ground_truth}\n</result>")
    assert compute_score("s", solution, ground_truth, variant="released")["score"] == pytest.approx(expected, rel=1e-12)


# --- without the length-aware reward (ablation) ----------------------------------------------------


@pytest.mark.parametrize(
    "text, labels, expected",
    [
        (guard_output("harmful", "none"), ("harmful", "none"), 1.0),
        (guard_output("harmful", "harmful"), ("harmful", "none"), 0.5),
        (guard_output("unharmful", "harmful"), ("harmful", "none"), 0.0),
        (NO_THINK, ("harmful", "none"), 0.0),  # the format gate still applies
        ("", ("harmful", "none"), 0.0),
    ],
)
def test_length_aware_false_scores_r_safety_alone(text, labels, expected):
    for n_chars in (len(text), 5000):
        padded_text = padded(text, n_chars) if "</think>" in text else text
        assert compute_score("s", padded_text, gold(*labels), length_aware=False)["score"] == expected


def test_verl_reward_model_keywords_are_accepted():
    out = compute_score(
        "s", guard_output("harmful", "none"), gold("harmful", "none"), reward_router_address=None,
        reward_model_tokenizer=None,
    )  # fmt: skip
    assert out["score"] == 0.0


def test_chars_unit_ignores_a_passed_token_count():
    text = padded(guard_output("unharmful", "none"), 768)
    assert compute_score("s", text, gold("harmful", "none"), response_length_tokens=3)["score"] == -8.0


def test_parse_verdict_is_reexported():
    from rewards.grammar import parse_verdict

    assert reward.parse_verdict is parse_verdict


# --- F1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tp, fp, fn, expected",
    [(3, 1, 2, 6 / 9), (0, 4, 0, 0.0), (0, 0, 5, 0.0), (5, 0, 0, 1.0), (0.375, 0.125, 0.25, 6 / 9), (1, 1, 1, 0.5)],
)
def test_f1_from_counts(tp, fp, fn, expected):
    assert f1_from_counts(tp, fp, fn) == pytest.approx(expected)


def test_f1_zero_division():
    assert f1_from_counts(0, 0, 0) == 0.0
    assert f1_from_counts(0, 0, 0, zero_division=1.0) == 1.0
    assert math.isnan(f1_from_counts(0, 0, 0, zero_division=math.nan))


@pytest.mark.parametrize("bad", [-1, math.inf, math.nan, "3", None, True])
def test_f1_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="tp must be"):
        f1_from_counts(bad, 0, 0)


def test_f1_from_summed_reward_indicators():
    # gold -> predicted: tp, tp, fn, fn (parse failure), fp, fp (parse failure), tn, tn: F1 = 4 / (4 + 2 + 2)
    cases = [("harmful", "harmful"), ("harmful", "harmful"), ("harmful", "unharmful"), ("harmful", FAIL),
             ("unharmful", "harmful"), ("unharmful", FAIL), ("unharmful", "unharmful"),
             ("unharmful", "unharmful")]  # fmt: skip
    sums = dict.fromkeys(("request_tp", "request_fp", "request_fn", "request_tn"), 0.0)
    for gold_label, predicted in cases:
        out = compute_score("s", guard_output(predicted, "none"), gold(gold_label, "none"))
        for key in sums:
            sums[key] += out[key]
    assert sums == {"request_tp": 2.0, "request_fp": 2.0, "request_fn": 2.0, "request_tn": 2.0}
    assert f1_from_counts(sums["request_tp"], sums["request_fp"], sums["request_fn"]) == 0.5

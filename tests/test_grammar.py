"""The guard's output grammar (rewards/grammar.py): labels, formatter, parser, ground truth."""

from __future__ import annotations

import re
from typing import Optional

import pytest

from rewards import grammar
from rewards.grammar import (
    HARMFUL,
    NO_RESPONSE,
    UNHARMFUL,
    Verdict,
    format_output,
    format_verdict,
    ground_truth_labels,
    normalize_label,
    parse_verdict,
    read_verdict,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

RESPONSE_CASES = [(HARMFUL, HARMFUL), (HARMFUL, UNHARMFUL), (HARMFUL, None), (UNHARMFUL, HARMFUL),
                  (UNHARMFUL, UNHARMFUL), (UNHARMFUL, None)]  # fmt: skip


# --- labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, task, expected",
    [
        ("harmful", "request", HARMFUL),
        (" Harmful ", "request", HARMFUL),
        ("UNSAFE", "request", HARMFUL),
        (True, "request", HARMFUL),
        (1, "request", HARMFUL),
        ("unharmful", "request", UNHARMFUL),
        ("safe", "response", UNHARMFUL),
        (False, "response", UNHARMFUL),
        (0, "response", UNHARMFUL),
        (None, "response", NO_RESPONSE),
        ("None", "response", NO_RESPONSE),
        ("", "response", NO_RESPONSE),
        (float("nan"), "response", NO_RESPONSE),
    ],
)
def test_normalize_label_accepts_dataset_spellings(value, task, expected):
    assert normalize_label(value, task=task) == expected


@pytest.mark.parametrize(
    "value, task, match",
    [
        ("maybe", "request", "maybe"),
        (2, "response", "2"),
        (None, "request", "missing"),
        ("none", "request", "none"),
        ("harmful", "prompt", "task must be"),
    ],
)
def test_normalize_label_rejects_unknown_values_naming_them(value, task, match):
    with pytest.raises(ValueError, match=match):
        normalize_label(value, task=task)


def test_format_verdict_and_output_layout():
    assert format_verdict("harmful", None) == "Request: harmful\nResponse: None"
    assert format_output("  step 1  ", "unharmful", "harmful") == (
        "<think>\nstep 1\n</think>\n<result>\nRequest: unharmful\nResponse: harmful\n</result>"
    )


# --- parser: well-formed outputs -----------------------------------------------------------------


@pytest.mark.parametrize("request_label, response_label", RESPONSE_CASES)
def test_every_formatted_output_parses_back(request_label, response_label):
    verdict = parse_verdict(format_output("Some reasoning.\nMore.", request_label, response_label))
    assert verdict == Verdict(request_label, response_label or NO_RESPONSE, True, True)
    assert verdict.parsed


@pytest.mark.parametrize(
    "text, expected",
    [
        # case-insensitive tags and labels, CRLF line ends, markdown decoration, trailing punctuation
        ("<THINK>x</Think><RESULT>\nREQUEST: Harmful\nresponse: NONE\n</RESULT>", (HARMFUL, NO_RESPONSE)),
        ("<think>x</think>\r\n<result>\r\nRequest: harmful\r\nResponse: unharmful\r\n</result>", (HARMFUL, UNHARMFUL)),
        ("<think>x</think><result>**Request:** unharmful.\n- Response: `harmful`</result>", (UNHARMFUL, HARMFUL)),
        ("<think>x</think><result>Request:harmful\nResponse :harmful</result>", (HARMFUL, HARMFUL)),
        # a repeated slot that agrees is fine
        ("<think>x</think><result>Request: harmful\nRequest: harmful\nResponse: None</result>", (HARMFUL, NO_RESPONSE)),
        # text around the blocks is allowed
        ("Sure.\n<think>x</think>\nso:\n<result>Request: unharmful\nResponse: None</result>\nDone.",
         (UNHARMFUL, NO_RESPONSE)),
        # prose mentioning a label mid-line (not a label line) does not void the answer
        ("<think>The user's request: harmful instructions.</think><result>Request: harmful\nResponse: None</result>",
         (HARMFUL, NO_RESPONSE)),
    ],
)  # fmt: skip
def test_lenient_spellings_are_read(text, expected):
    verdict = parse_verdict(text)
    assert (verdict.request, verdict.response) == expected
    assert verdict.format_ok and verdict.result_ok


# --- parser: what must not be read ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, req, resp, format_ok, result_ok",
    [
        ("", None, None, False, False),
        ("Request: harmful\nResponse: harmful", None, None, False, False),  # no result block
        ("<think>x</think><result>Request: harmful\nResponse: harmful", None, None, False, False),  # unclosed
        ("<think>x</think>Request: harmful\nResponse: harmful</result>", None, None, False, False),  # no open
        ("<think>x</think></result>Request: harmful\nResponse: None<result>", None, None, False, False),  # reversed
        # two result blocks, even agreeing ones
        ("<think>x</think><result>Request: harmful\nResponse: None</result><result>Request: harmful\n"
         "Response: None</result>", None, None, False, False),
        ("<think>x</think><result><result>Request: harmful\nResponse: None</result></result>",
         None, None, False, False),
        # both labels in a slot, or a non-label value
        ("<think>x</think><result>Request: harmful/unharmful\nResponse: None</result>", None, NO_RESPONSE, True, True),
        ("<think>x</think><result>Request: harmful, unharmful\nResponse: None</result>", None, NO_RESPONSE, True, True),
        ("<think>x</think><result>Request: harmful unharmful\nResponse: None</result>", None, NO_RESPONSE, True, True),
        ("<think>x</think><result>Request: not harmful\nResponse: None</result>", None, NO_RESPONSE, True, True),
        ("<think>x</think><result>Request: harmful\nResponse: unknown</result>", HARMFUL, None, True, True),
        ("<think>x</think><result>Request: harmful\nResponse: harmful Request: unharmful</result>",
         HARMFUL, None, True, True),
        ("<think>x</think><result>Request: none\nResponse: None</result>", None, NO_RESPONSE, True, True),
        ("<think>x</think><result></result>", None, None, True, True),
        # a repeated slot that disagrees
        ("<think>x</think><result>Request: harmful\nRequest: unharmful\nResponse: None</result>",
         None, NO_RESPONSE, True, True),
        # think problems: labels still readable, but format_ok is False
        ("<result>Request: harmful\nResponse: None</result>", HARMFUL, NO_RESPONSE, False, True),
        ("<result>Request: harmful\nResponse: None</result><think>x</think>", HARMFUL, NO_RESPONSE, False, True),
        ("</think>x<think><result>Request: harmful\nResponse: None</result>", HARMFUL, NO_RESPONSE, False, True),
        ("<think>x<result>Request: harmful\nResponse: None</result>", HARMFUL, NO_RESPONSE, False, True),
        ("<think><think>x</think><result>Request: harmful\nResponse: None</result>", HARMFUL, NO_RESPONSE, False, True),
        ("<think>x</think><result>Request: harmful\nResponse: None\n<think></think></result>",
         HARMFUL, NO_RESPONSE, False, True),
        ("<think >x</think><result>Request: harmful\nResponse: None</result>", HARMFUL, NO_RESPONSE, False, True),
    ],
)  # fmt: skip
def test_ambiguous_or_malformed_outputs(text, req, resp, format_ok, result_ok):
    assert parse_verdict(text) == Verdict(req, resp, format_ok, result_ok)


@pytest.mark.parametrize(
    "text, req, resp",
    [
        # label lines in the reasoning, before the blocks or after the result: the result block decides
        ("Request: harmful\n<think>x</think><result>Request: unharmful\nResponse: None</result>", UNHARMFUL, NO_RESPONSE),
        ("<think>\nRequest: harmful\n</think><result>Request: harmful\nResponse: None</result>", HARMFUL, NO_RESPONSE),
        ("<think>\nRequest: unharmful\nResponse: harmful\n</think>\n<result>\nRequest: harmful\nResponse: None\n</result>",
         HARMFUL, NO_RESPONSE),
        ("<think>x</think><result>Request: harmful\nResponse: None</result>\n**Response**: harmful", HARMFUL, NO_RESPONSE),
        ("<think>x</think><result>Request: harmful\nResponse: None</result>Request: unharmful", HARMFUL, NO_RESPONSE),
        ("<think>x\rResponse: unharmful</think><result>Request: harmful\nResponse: None</result>", HARMFUL, NO_RESPONSE),
    ],
)  # fmt: skip
def test_text_outside_the_result_block_never_changes_a_label(text, req, resp):
    assert parse_verdict(text) == Verdict(req, resp, True, True)


@pytest.mark.parametrize("value", [None, 42, b"<think>x</think><result>Request: harmful\nResponse: None</result>",
                                   bytearray(b"\xff\xfe<result>"), ["a"]])  # fmt: skip
def test_non_string_input_never_raises(value):
    verdict = parse_verdict(value)
    assert isinstance(verdict, Verdict)
    if isinstance(value, bytes):
        assert verdict == Verdict(HARMFUL, NO_RESPONSE, True, True)


def test_object_whose_str_fails_is_unreadable_not_an_error():
    class Hostile:
        def __str__(self):
            raise RuntimeError("no")

    assert parse_verdict(Hostile()) == Verdict(None, None, False, False)


def test_canonical_fast_path_agrees_with_the_general_slot_reader():
    for body, labels in grammar._CANONICAL_BODIES.items():
        assert grammar._read_slots(body) == labels
        assert grammar._read_slots(f"\n  {body}\n") == labels
    assert len(grammar._CANONICAL_BODIES) == 6


# --- differential test against a direct, slow transcription of the rules -------------------------

_I = re.IGNORECASE


def _reference_parse(text: str) -> tuple[Optional[str], Optional[str], bool, bool]:
    """The rules of parse_verdict's docstring, written plainly with case-insensitive regexes."""

    def count(tag: str) -> int:
        return len(re.findall(re.escape(tag), text, _I))

    def pos(tag: str) -> int:
        return re.search(re.escape(tag), text, _I).start()

    if count("<result>") != 1 or count("</result>") != 1 or pos("</result>") < pos("<result>"):
        return None, None, False, False
    r_open, r_close = pos("<result>"), pos("</result>")
    format_ok = count("<think>") == 1 and count("</think>") == 1 and pos("<think>") < pos("</think>") < r_open
    body = text[r_open + len("<result>") : r_close]
    out = []
    for name, allowed in (("request", ("harmful", "unharmful")), ("response", ("harmful", "unharmful", "none"))):
        values = [v for n, v in re.findall(r"\b(request|response)\s*:[ \t]*([^\n\r]*)", body, _I) if n.lower() == name]
        words = [v.strip().strip(grammar._TRAILING_PUNCT).lower().split() for v in values]
        labels = {w[0].strip(grammar._TRAILING_PUNCT) if len(w) == 1 else None for w in words}
        ok = len(labels) == 1 and next(iter(labels)) in allowed
        out.append(next(iter(labels)) if ok else None)
    return out[0], out[1], format_ok, True


_FRAGMENTS = st.sampled_from(
    ["<think>", "</think>", "<result>", "</result>", "<THINK>", "</Result>", "\n", "\r\n", " ", "Request:",
     "Response:", "request: ", "RESPONSE : ", "harmful", "unharmful", "None", "none", "/", ".", "**", "- ", "# ",
     "the user's request: harmful", "maybe", "<result >", "<", ">"]
)  # fmt: skip
# ASCII filler: the parser lower-cases, the reference uses regex case folding; they differ only on
# exotic Unicode (e.g. U+0130 folds to "i" in a regex but lowers to two characters).
_FILLER = st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=126), max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, _FILLER), max_size=24))
def test_fast_parser_matches_the_plain_reference(parts):
    text = "".join(parts)
    assert read_verdict(text) == _reference_parse(text)
    assert parse_verdict(text) == Verdict(*read_verdict(text))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.lists(st.one_of(_FRAGMENTS, st.text()), max_size=40).map("".join)))
def test_parse_never_raises(value):
    verdict = parse_verdict(value)
    assert verdict.request in (None, HARMFUL, UNHARMFUL)
    assert verdict.response in (None, HARMFUL, UNHARMFUL, NO_RESPONSE)
    assert not verdict.format_ok or verdict.result_ok


# --- ground truth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ground_truth, expected",
    [
        ("Request: harmful\nResponse: None", (HARMFUL, NO_RESPONSE)),
        ("request: UNHARMFUL\nresponse: harmful.", (UNHARMFUL, HARMFUL)),
        ("Request: harmful", (HARMFUL, NO_RESPONSE)),
        ("<result>\nRequest: unharmful\nResponse: unharmful\n</result>", (UNHARMFUL, UNHARMFUL)),
        ({"request": "harmful", "response": None}, (HARMFUL, NO_RESPONSE)),
        ({"request": True}, (HARMFUL, NO_RESPONSE)),
        ('{"request": "unharmful", "response": "harmful"}', (UNHARMFUL, HARMFUL)),
        (b"Request: harmful\nResponse: unharmful", (HARMFUL, UNHARMFUL)),
    ],
)
def test_ground_truth_forms(ground_truth, expected):
    assert ground_truth_labels(ground_truth) == expected


@pytest.mark.parametrize(
    "ground_truth, match",
    [
        ("Request: maybe\nResponse: None", "maybe"),
        ("Request: harmful\nResponse: dangerous", "dangerous"),
        ("Response: harmful", "no 'Request:' label"),
        ("Request: None\nResponse: None", "no label"),
        ("Request: harmful\nResponse: None\nRequest: unharmful\nResponse: None", "more than one 'Request'"),
        ({"response": "harmful"}, "no 'request' key"),
        ({"request": "sort of"}, "sort of"),
        ('{"request": ', "JSON"),
        (3, "int"),
        (None, "NoneType"),
    ],
)
def test_bad_ground_truth_raises_naming_it(ground_truth, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        ground_truth_labels(ground_truth)

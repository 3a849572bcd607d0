"""The openai backend against a scriptable chat-completions server on 127.0.0.1 (the project's
``FakeChatServer``): what goes over the wire per server kind, images, retries, servers that return
fewer choices than asked for, seeds and token accounting. What a real third-party server does with
the same requests is checked in test_real_server.py."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading

import pytest

pytest.importorskip("openai")
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from data_prep.prompt import INSTRUCTION
from data_prep.record import GuardRecord
from data_prep.synthesize.fake_server import FakeChatServer, Reply, SeenRequest, completion_reply, error_reply
from inference import GenerationRequest, get_backend, request_from_record
from inference.openai_chat import apportion_tokens
from rewards.grammar import format_output

KEY = "sk-test-secret-123"
REPLY = format_output("The request is benign.", "unharmful", None)
TOKENS_PER_CHOICE = 7


def echo(request: SeenRequest) -> Reply:
    """Honours ``n``: choice j of a request sent seed s reads ``REPLY #s-j``; 7 tokens per choice."""
    n, seed = request.body.get("n", 1), request.body.get("seed")
    return completion_reply([f"{REPLY} #{seed}-{j}" for j in range(n)], prompt_tokens=10,
                            completion_tokens=TOKENS_PER_CHOICE * n)  # fmt: skip


def one_choice(request: SeenRequest) -> Reply:
    """Ignores ``n`` (as ``transformers serve`` does): one choice per request."""
    return completion_reply(f"{REPLY} #{request.body.get('seed')}", completion_tokens=TOKENS_PER_CHOICE)


class FailFirst:
    """Answers ``status`` to the first ``count`` requests (with a short retry-after), then echoes."""

    def __init__(self, count: int, status: int) -> None:
        self.left, self.status, self.lock = count, status, threading.Lock()

    def __call__(self, request: SeenRequest) -> Reply:
        with self.lock:
            fail, self.left = self.left > 0, self.left - 1
        if fail:
            return error_reply(self.status, "overloaded", headers={"retry-after-ms": "5"})
        return echo(request)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _png(color=(10, 200, 30), size=(12, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _requests(count: int) -> list[GenerationRequest]:
    return [GenerationRequest(messages=[{"role": "user", "content": f"q{i}"}], key=f"r{i}") for i in range(count)]


def test_text_request_roundtrip_sends_the_limit_and_every_sampling_field(api_key):
    record = GuardRecord(id="t1", source="s", request="How do I bake bread?", request_label="unharmful")
    with FakeChatServer(echo) as server:
        backend = get_backend("openai", model="guard", base_url=server.base_url, concurrency=2)
        [[gen]] = backend.generate([request_from_record(record)], max_new_tokens=64, seed=5)
    [seen] = server.requests
    body = seen.body
    assert body["model"] == "guard"
    assert body["messages"][0] == {"role": "system", "content": INSTRUCTION}
    assert body["messages"][1]["content"] == "Human user:\nHow do I bake bread?\n\nAI assistant:\nNone\n\n"
    # a local server is vLLM-like by default: both limits, nothing left to generation_config.json
    assert body["max_tokens"] == body["max_completion_tokens"] == 64
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["repetition_penalty"]) == (0.0, 1.0, -1, 0.0, 1.0)
    assert (body["n"], body["seed"]) == (1, 5)
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert (gen.text, gen.num_tokens, gen.finish_reason) == (f"{REPLY} #5-0", TOKENS_PER_CHOICE, "stop")


@pytest.mark.parametrize("kind", ["openai", "transformers"])
def test_other_server_kinds_get_their_own_form(api_key, kind):
    with FakeChatServer(echo) as server:
        backend = get_backend("openai", model="guard", base_url=server.base_url, server_kind=kind)
        backend.generate(_requests(1), max_new_tokens=16, temperature=0.7)
    body = server.requests[0].body
    assert not {"top_k", "min_p", "repetition_penalty"} & set(body)
    if kind == "openai":
        assert body["max_completion_tokens"] == 16 and "max_tokens" not in body and "generation_config" not in body
    else:
        assert body["max_tokens"] == 16 and json.loads(body["generation_config"])["top_k"] == 0


def test_image_arrives_as_data_url_in_place(api_key, tmp_path):
    png = _png()
    path = tmp_path / "img.png"
    path.write_bytes(png)
    pil = Image.new("RGB", (5, 5), (255, 0, 0))
    records = [
        GuardRecord(id="img-path", source="s", request="What is this?", request_label="unharmful", images=(str(path),)),
        GuardRecord(id="img-pil", source="s", request="", request_label="harmful", images=(pil,)),
    ]
    with FakeChatServer(echo) as server:
        backend = get_backend("openai", model="guard", base_url=server.base_url)
        out = backend.generate([request_from_record(r) for r in records])
    assert len(out) == 2 and len(server.requests) == 2
    for seen in server.requests:
        parts = seen.body["messages"][1]["content"]
        assert parts[0] == {"type": "text", "text": "Human user:\n"}
        assert parts[1]["type"] == "image_url"
        url = parts[1]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert decoded.size in {(12, 8), (5, 5)}
        if decoded.size == (12, 8):  # encoded bytes are forwarded untouched
            assert base64.b64decode(url.split(",", 1)[1]) == png
            assert parts[2]["text"].startswith("\nWhat is this?\n")
        else:
            assert parts[2]["text"] == "\n\nAI assistant:\nNone\n\n"


def test_max_pixels_shrinks_images_before_sending(api_key):
    big = Image.new("RGB", (1000, 500), (0, 0, 255))
    record = GuardRecord(id="big", source="s", request="x", request_label="unharmful", images=(big,))
    with FakeChatServer(echo) as server:
        get_backend("openai", model="guard", base_url=server.base_url, max_pixels=28 * 28 * 64).generate(
            [request_from_record(record)]
        )
        get_backend("openai", model="guard", base_url=server.base_url).generate([request_from_record(record)])
    shrunk, full = (Image.open(io.BytesIO(base64.b64decode(r.image_urls[0].split(",", 1)[1]))) for r in server.requests)
    assert full.size == (1000, 500)
    assert shrunk.size[0] * shrunk.size[1] <= 28 * 28 * 64 * 1.01 and abs(shrunk.size[0] / shrunk.size[1] - 2) < 0.02


def test_retries_on_503_and_429_then_succeeds(api_key):
    for status in (503, 429):
        with FakeChatServer(FailFirst(2, status)) as server:
            backend = get_backend("openai", model="guard", base_url=server.base_url, max_retries=3)
            [[gen]] = backend.generate(_requests(1))
        assert len(server.requests) == 3 and gen.text.startswith(REPLY)


def test_failure_after_retries_raises_naming_request_not_key(api_key):
    with FakeChatServer(lambda r: error_reply(503, f"overloaded {r.headers['authorization']}",
                                              headers={"retry-after-ms": "5"})) as server:  # fmt: skip
        backend = get_backend("openai", model="guard", base_url=server.base_url, max_retries=1)
        with pytest.raises(RuntimeError, match="r0") as info:
            backend.generate(_requests(1))
    assert len(server.requests) == 2
    assert KEY not in str(info.value)


def test_a_refusal_of_the_sampling_fields_says_which_server_kind_to_pick(api_key):
    refusal = {"detail": "Unexpected fields in the request: {'top_k', 'min_p', 'repetition_penalty'}"}
    with FakeChatServer(lambda r: Reply(status=422, body=refusal)) as server:
        backend = get_backend("openai", model="guard", base_url=server.base_url, max_retries=0)
        with pytest.raises(RuntimeError, match=r"request 'r0'.*HTTP 422.*--server-kind transformers"):
            backend.generate(_requests(1))


def test_n_samples_seeds_strided_and_tokens_split(api_key):
    with FakeChatServer(echo) as server:
        backend = get_backend("openai", model="guard", base_url=server.base_url, concurrency=3)
        out = backend.generate(_requests(6), n=3, temperature=1.0, top_p=0.95, seed=100)
    assert len(server.requests) == 6  # one request per prompt: the server honours n
    for i, gens in enumerate(out):
        # request i owns seeds 100 + 3i .. 100 + 3i + 2: no seed shared with a neighbour's children
        assert [g.text.rsplit("#", 1)[1] for g in gens] == [f"{100 + 3 * i}-{j}" for j in range(3)]
        # the reply's total (7 per choice) split over equally long choices: exact per choice here
        assert [g.num_tokens for g in gens] == [TOKENS_PER_CHOICE] * 3
    assert all(r.body["top_p"] == 0.95 and r.body["n"] == 3 for r in server.requests)


def test_a_server_that_ignores_n_is_asked_again_and_it_is_logged_once(api_key, caplog):
    with FakeChatServer(one_choice) as server, caplog.at_level(logging.WARNING, logger="inference.openai_chat"):
        backend = get_backend("openai", model="guard", base_url=server.base_url, concurrency=2)
        out = backend.generate(_requests(3), n=3, temperature=1.0, seed=10)
    assert [[g.text.rsplit("#", 1)[1] for g in gens] for gens in out] == [
        [str(10 + 3 * i + j) for j in range(3)] for i in range(3)
    ]  # each missing sample asked for with the next unused seed of its request
    assert sorted((r.body["seed"], r.body["n"]) for r in server.requests) == sorted(
        (10 + 3 * i + j, 3 - j) for i in range(3) for j in range(3)
    )
    assert all(g.num_tokens == TOKENS_PER_CHOICE for gens in out for g in gens)  # one choice: exact counts
    said = [r for r in caplog.records if "asking again" in r.getMessage()]
    assert len(said) == 1 and "returned 1 of the 3 choices" in said[0].getMessage()


def test_greedy_asks_once_and_copies(api_key):
    with FakeChatServer(echo) as server:
        backend = get_backend("openai", model="guard", base_url=server.base_url)
        [gens] = backend.generate(_requests(1), n=4, temperature=0.0, seed=3)
    assert [r.body["n"] for r in server.requests] == [1]
    assert len(gens) == 4 and len(set(gens)) == 1


def test_no_choices_is_an_error_naming_the_request(api_key):
    with FakeChatServer(lambda r: completion_reply([])) as server:
        backend = get_backend("openai", model="guard", base_url=server.base_url)
        with pytest.raises(RuntimeError, match="request 'r0'.*no choices"):
            backend.generate(_requests(1), n=2, temperature=1.0)


def test_finish_reason_and_a_cut_choice_in_the_token_split(api_key):
    def handler(request: SeenRequest) -> Reply:  # choice 1 cut at the limit (16), choice 0 stopped after 4
        return completion_reply(["done", "cut off mid-sent"], completion_tokens=20, finish_reason=["stop", "length"])

    with FakeChatServer(handler) as server:
        [gens] = get_backend("openai", model="guard", base_url=server.base_url).generate(
            _requests(1), n=2, temperature=1.0, max_new_tokens=16
        )
    assert [(g.num_tokens, g.finish_reason, g.truncated) for g in gens] == [(4, "stop", False), (16, "length", True)]


@given(
    texts=st.lists(st.text(max_size=40), min_size=1, max_size=6),
    cut=st.lists(st.booleans(), min_size=6, max_size=6),
    limit=st.integers(1, 64),
    data=st.data(),
)
def test_token_split_adds_up_and_respects_the_limit(texts, cut, limit, data):
    choices = [(t, "length" if c else "stop") for t, c in zip(texts, cut)]
    total = data.draw(st.integers(0, limit * len(choices)), label="total")
    shares = apportion_tokens(total, choices, limit)
    assert len(shares) == len(choices) and all(s >= 0 for s in shares)
    assert sum(shares) == total  # sums and means over outputs stay exact
    assert all(s <= limit for s in shares)  # no choice is said to exceed the limit the server kept to
    n_cut = sum(r == "length" for _, r in choices)
    if 0 < n_cut < len(choices) and n_cut * limit <= total:
        assert all(s == limit for s, (_, r) in zip(shares, choices) if r == "length")
    assert apportion_tokens(None, choices, limit) == [0] * len(choices)  # no usage reported: unknown


def test_bad_options_fail_before_any_request(api_key):
    backend = get_backend("openai", model="guard", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="top_p"):
        backend.generate([], top_p=0.0)
    with pytest.raises(ValueError, match="server kind must be one of"):
        get_backend("openai", model="guard", server_kind="tgi")
    with pytest.raises(ValueError, match="unknown inference backend 'nope'"):
        get_backend("nope")
    with pytest.raises(ValueError, match="placeholder"):
        GenerationRequest(messages=[{"role": "user", "content": "<image> hi"}], images=())


def test_a_prompt_too_long_for_the_context_is_refused_alone(api_key, caplog):
    too_long = ("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens "
                "(4904 in the messages, 4096 in the completion). Please reduce the length of the messages.")  # vLLM's words

    def handler(request: SeenRequest) -> Reply:
        return error_reply(400, too_long) if request.user_text == "q1" else echo(request)

    with FakeChatServer(handler) as server, caplog.at_level(logging.WARNING, logger="inference.openai_chat"):
        out = get_backend("openai", model="guard", base_url=server.base_url).generate(_requests(3), n=2, temperature=1.0)
    assert [g.finish_reason for g in out[1]] == ["prompt_too_long"] * 2 and out[1][0].text == ""
    assert all(g.text.startswith(REPLY) for i in (0, 2) for g in out[i])  # the others ran
    assert any("'r1'" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)

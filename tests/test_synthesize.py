"""Synthesis against a real chat-completions HTTP server on 127.0.0.1, scripted per request.

The engine runs in-process (asyncio) with the real ``openai`` client; the server
(:class:`data_prep.synthesize.fake_server.FakeChatServer`) records every request it receives, so
the assertions are about what really went over the wire. Backoff delays are shrunk so the
suite stays fast; the only timing assertion is a lower bound (Retry-After is a floor).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Union

import pytest
from PIL import Image

from data_prep.record import GuardRecord
from data_prep.records_io import read_records
from data_prep.synthesize import FatalAPIError, PromptTemplate, RetryPolicy, SynthesisSettings, synthesize
from data_prep.synthesize.engine import default_rejects_path
from data_prep.synthesize.fake_server import FakeChatServer, Reply, SeenRequest, completion_reply, error_reply, oracle, oracle_trace
from data_prep.synthesize.journal import AppendLog
from data_prep.synthesize.pricing import find_price, load_price_table, resolve_price
from data_prep.synthesize.retry import RateLimiter, parse_retry_after
from data_prep.synthesize.template import FIELDS
from data_prep.synthesize.validate import TraceRejected, check_trace
from rewards.grammar import parse_verdict

FAST_RETRY = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=0.05)
_ITEM = re.compile(r"item (\w+)\.")

Step = Union[Reply, Callable[[SeenRequest], Reply]]


def make_record(rid: str, *, harmful: bool = False, response: Optional[str] = "Sure, here it is.", **kw) -> GuardRecord:
    resp_label = None if response is None else ("harmful" if harmful else "unharmful")
    return GuardRecord(
        id=rid, source="unit", request=f"Tell me about item {rid}.", request_label="harmful" if harmful else "unharmful",
        response=response, response_label=resp_label, **kw,
    )


def record_id(request: SeenRequest) -> str:
    match = _ITEM.search(request.user_text)
    assert match, f"no record id in prompt: {request.user_text[:200]!r}"
    return match.group(1)


class Script:
    """Replies per record id, consumed in order; once a record's list is used up: the oracle."""

    def __init__(self, plan: Optional[dict[str, list[Step]]] = None) -> None:
        self.plan = {rid: list(steps) for rid, steps in (plan or {}).items()}
        self._lock = threading.Lock()

    def __call__(self, request: SeenRequest) -> Reply:
        with self._lock:
            steps = self.plan.get(record_id(request))
            step = steps.pop(0) if steps else None
        if step is None:
            return oracle(request)
        return step(request) if callable(step) else step


def wrong_labels(request: SeenRequest) -> Reply:
    return completion_reply(oracle_trace("harmful", "harmful"))


def run(records, out: Path, server: FakeChatServer, **settings):
    kwargs = {"base_url": server.base_url, "concurrency": 4, "retry": FAST_RETRY, "jitter_seed": 0, **settings}
    return synthesize(records, output=out, settings=SynthesisSettings(**kwargs), api_key="sk-unit-test")


def ids_of(requests) -> list[str]:
    return [record_id(r) for r in requests]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------------- end to end
def test_good_traces_become_canonical_targets(tmp_path):
    records = [make_record("a"), make_record("b", harmful=True), make_record("c", response=None)]
    sloppy = "Sure! Here you go.\n<THINK>\n## Reasoning Step 1: benign.\n</THINK>\n<Result>\nrequest: UNHARMFUL\nresponse: unharmful\n</Result>\nBye"
    script = Script({"a": [completion_reply(sloppy, prompt_tokens=11, completion_tokens=7)]})
    out = tmp_path / "out.jsonl"
    with FakeChatServer(script) as server:
        summary = run(records, out, server)
    assert (summary.done, summary.rejected, summary.failed, summary.requests) == (3, 0, 0, 3)
    assert sorted(ids_of(server.requests)) == ["a", "b", "c"]
    assert all(r.headers.get("authorization") == "Bearer sk-unit-test" for r in server.requests)
    rows = {row["id"]: row for row in lines(out)}
    # the sloppy trace is rebuilt in the released layout, preamble and trailer dropped
    assert rows["a"]["reasoning"] == (
        "<think>\n## Reasoning Step 1: benign.\n</think>\n<result>\nRequest: unharmful\nResponse: unharmful\n</result>"
    )
    assert rows["a"]["meta"]["synthesis"] == {
        "model": "gpt-4o", "attempt": 1, "prompt_tokens": 11, "completion_tokens": 7, "finish_reason": "stop",
    }
    # every line rebuilds the record (data_prep's records reader) with the ground truth in its target
    rebuilt = {r.id: r for r in read_records(out)}
    for original in records:
        again = rebuilt[original.id]
        assert (again.request, again.response, again.request_label, again.response_label) == (
            original.request, original.response, original.request_label, original.response_label,
        )
        verdict = parse_verdict(again.reasoning)
        assert verdict.format_ok and (verdict.request, verdict.response) == (original.request_label, original.response_label)
    assert summary.prompt_tokens == 11 + sum(len(r.user_text) // 4 for r in server.requests if record_id(r) != "a")
    assert default_rejects_path(out).read_text() == ""


def test_wrong_labels_are_rejected_and_asked_again(tmp_path):
    records = [make_record("fixed"), make_record("stubborn")]
    script = Script({"fixed": [wrong_labels], "stubborn": [wrong_labels] * 10})
    out = tmp_path / "out.jsonl"
    with FakeChatServer(script) as server:
        summary = run(records, out, server, max_attempts=3)
    assert ids_of(server.requests).count("fixed") == 2
    assert ids_of(server.requests).count("stubborn") == 3
    assert (summary.done, summary.rejected, summary.failed) == (1, 1, 0)
    assert summary.rejected_attempts == {"wrong_request_label": 4}
    assert [row["id"] for row in lines(out)] == ["fixed"]
    assert lines(out)[0]["meta"]["synthesis"]["attempt"] == 2
    rejects = lines(default_rejects_path(out))
    assert [(r["id"], r["kind"], r["attempt"], r["code"]) for r in rejects if r["id"] == "stubborn"] == [
        ("stubborn", "rejected", n, "wrong_request_label") for n in (1, 2, 3)
    ]
    assert "ground truth unharmful" in rejects[0]["reason"] and "<result>" in rejects[0]["text"]


def test_broken_grammar_and_empty_content_are_rejected(tmp_path):
    script = Script({
        "a": [completion_reply("Request: unharmful\nResponse: unharmful")],  # no blocks at all
        "b": [completion_reply(None, finish_reason="content_filter")],
        "c": [completion_reply("<think>\nstep\n</think>\n<result>\nRequest: unharmful\n", finish_reason="length")],
    })
    out = tmp_path / "out.jsonl"
    with FakeChatServer(script) as server:
        summary = run([make_record(i) for i in "abc"], out, server)
    assert summary.done == 3 and summary.rejected_attempts == {"grammar": 2, "empty": 1}
    reasons = {r["id"]: r["reason"] for r in lines(default_rejects_path(out))}
    assert "finish_reason=length" in reasons["c"] and "content_filter" in reasons["b"]


@pytest.mark.parametrize(
    "broken",
    [
        Reply(body=b'{"choices": [{"message": ', content_type="application/json"),  # cut-off JSON
        Reply(body=b"<html>502 Bad Gateway</html>", content_type="text/html"),  # a proxy page with 200
        Reply(body={"object": "chat.completion", "choices": []}),  # JSON without a choice
    ],
    ids=["truncated-json", "html", "no-choices"],
)
@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_malformed_bodies_are_retried(tmp_path, broken, backend):
    out = tmp_path / "out.jsonl"
    with FakeChatServer(Script({"a": [broken]})) as server:
        summary = run([make_record("a")], out, server, http_backend=backend)
    assert (summary.done, summary.retries, summary.requests) == (1, 1, 2)


def test_429_waits_at_least_retry_after(tmp_path):
    script = Script({"a": [error_reply(429, "slow down", headers={"Retry-After": "1"})]})
    out = tmp_path / "out.jsonl"
    with FakeChatServer(script) as server:
        summary = run([make_record("a")], out, server, retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.01))
    first, second = server.requests
    assert second.time - first.time >= 1.0  # Retry-After is a floor, even with a 10 ms backoff
    assert (summary.done, summary.retries) == (1, 1)


def test_429_retry_after_pauses_the_other_workers_too(tmp_path):
    told = threading.Event()

    def rate_limited(request: SeenRequest) -> Reply:
        told.set()
        return error_reply(429, "slow down", headers={"Retry-After": "1"})

    def busy_after_the_429(request: SeenRequest) -> Reply:
        told.wait(10)
        time.sleep(0.2)  # answered well after the 429, so the client has read the 429 first
        return error_reply(503, "busy")

    script = Script({"a": [rate_limited], "b": [busy_after_the_429]})
    with FakeChatServer(script) as server:
        summary = run([make_record("a"), make_record("b")], tmp_path / "out.jsonl", server, concurrency=2,
                      retry=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.01))
    t429 = next(r.time for r in server.requests if record_id(r) == "a")
    b_retry = [r.time for r in server.requests if record_id(r) == "b"][1]
    assert b_retry - t429 >= 1.0  # "b" only had a 10 ms backoff of its own: it waited for "a"'s Retry-After
    assert (summary.done, summary.retries) == (2, 2)


def test_limit_and_summary_json(tmp_path):
    out = tmp_path / "out.jsonl"
    with FakeChatServer(oracle) as server:
        summary = synthesize([make_record(f"r{i}") for i in range(5)], output=out, limit=2,
                             settings=SynthesisSettings(base_url=server.base_url, retry=FAST_RETRY))
    assert summary.done == 2 and len(lines(out)) == 2
    data = summary.as_dict(resolve_price("gpt-4o", input_price=1e6, output_price=0))
    assert data["cost_usd"] == summary.prompt_tokens and data["done"] == 2 and data["price"]["input"] == 1e6
    assert "done 2, rejected 0, failed 0" in summary.format(None) and "unknown" in summary.format(None)


def test_5xx_retried_then_failed_and_retried_on_the_next_run(tmp_path):
    script = Script({
        "flaky": [error_reply(500), error_reply(503)],
        "down": [error_reply(500, "boom")] * 4,  # max_retries=3: four sends, all 500
    })
    out = tmp_path / "out.jsonl"
    with FakeChatServer(script) as server:
        summary = run([make_record("flaky"), make_record("down")], out, server)
        assert ids_of(server.requests).count("flaky") == 3 and ids_of(server.requests).count("down") == 4
        assert (summary.done, summary.failed) == (1, 1)
        failed = [r for r in lines(default_rejects_path(out)) if r["kind"] == "failed"]
        assert failed[0]["id"] == "down" and "HTTP 500: boom" in failed[0]["reason"] and "4 tries" in failed[0]["reason"]
        # the server recovered: the failed record is tried again, the finished one is not
        again = run([make_record("flaky"), make_record("down")], out, server)
        assert ids_of(server.requests[7:]) == ["down"]
    assert (again.done, again.done_before, again.failed) == (1, 1, 0)
    assert sorted(row["id"] for row in lines(out)) == ["down", "flaky"]


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_slow_answers_time_out_and_are_retried(tmp_path, backend):
    slow = lambda request: oracle(request, delay=2.0)  # noqa: E731
    out = tmp_path / "out.jsonl"
    with FakeChatServer(Script({"a": [slow]})) as server:
        summary = run([make_record("a"), make_record("b")], out, server, timeout=0.5, http_backend=backend)
    assert ids_of(server.requests).count("a") == 2
    assert (summary.done, summary.retries, summary.failed) == (2, 1, 0)


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_bad_request_fails_the_record_and_unauthorized_stops_the_run(tmp_path, backend):
    out = tmp_path / "out.jsonl"
    with FakeChatServer(Script({"a": [error_reply(400, "image too large")]})) as server:
        summary = run([make_record("a"), make_record("b")], out, server, http_backend=backend)
        assert ids_of(server.requests).count("a") == 1  # a 400 is not retried
    assert (summary.done, summary.failed) == (1, 1)
    with FakeChatServer(lambda request: error_reply(401, "bad key")) as server:
        with pytest.raises(FatalAPIError, match="HTTP 401: bad key"):
            run([make_record(f"r{i}") for i in range(20)], tmp_path / "other.jsonl", server, concurrency=2,
                http_backend=backend)
        assert len(server.requests) <= 2  # stopped at once, not one 401 per record
    assert (tmp_path / "other.jsonl").read_text() == ""


@pytest.mark.parametrize("kind", ["auto", "openai", "transformers"])
def test_the_token_limit_and_sampling_fields_go_out_in_the_servers_form(tmp_path, kind):
    out = tmp_path / "out.jsonl"
    with FakeChatServer(oracle) as server:
        run([make_record("a")], out, server, server_kind=kind, max_tokens=77, temperature=0.5)
    body = server.requests[0].body
    assert (body["temperature"], body["top_p"], body["n"]) == (0.5, 1.0, 1)
    if kind == "auto":  # a local URL: vLLM's form, both limits, nothing left to generation_config.json
        assert body["max_tokens"] == body["max_completion_tokens"] == 77
        assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (-1, 0.0, 1.0)
    elif kind == "openai":
        assert body["max_completion_tokens"] == 77 and not {"max_tokens", "top_k", "generation_config"} & set(body)
    else:
        assert body["max_tokens"] == 77 and "max_completion_tokens" not in body and "top_k" not in body
        assert json.loads(body["generation_config"])["top_k"] == 0


def test_a_server_refusing_the_sampling_fields_stops_the_run_with_a_hint(tmp_path):
    refusal = Reply(status=422, body={"detail": "Unexpected fields in the request: {'top_k', 'repetition_penalty'}"})
    with FakeChatServer(lambda request: refusal) as server:
        with pytest.raises(FatalAPIError, match=r"HTTP 422: Unexpected fields.*--server-kind transformers"):
            run([make_record(f"r{i}") for i in range(20)], tmp_path / "out.jsonl", server, concurrency=2)
        assert len(server.requests) <= 2  # every request would be refused: stopped at once


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_images_arrive_as_data_urls_that_decode_to_the_image(tmp_path):
    picture = Image.new("RGB", (40, 30), (255, 255, 255))
    for x in range(40):
        picture.putpixel((x, x % 30), (200, 10, 10))
    png_path = tmp_path / "pic.png"
    png_path.write_bytes(_png(picture))
    jpeg_bytes = _png(picture, "JPEG")
    records = [
        make_record("png", images=(str(png_path),)),
        make_record("jpeg", images=(jpeg_bytes,), response=None),
        GuardRecord(id="only", source="unit", request="", request_label="unharmful", images=(str(png_path),)),
    ]
    seen: dict[str, SeenRequest] = {}

    def handler(request: SeenRequest) -> Reply:
        key = "only" if "item" not in request.user_text else record_id(request)
        seen[key] = request
        return oracle(request)

    out = tmp_path / "out.jsonl"
    with FakeChatServer(handler) as server:
        summary = run(records, out, server)
    assert summary.done == 3
    for key, mime, expected in (("png", "image/png", _png(picture)), ("jpeg", "image/jpeg", jpeg_bytes)):
        (url,) = seen[key].image_urls
        prefix = f"data:{mime};base64,"
        assert url.startswith(prefix)
        data = base64.b64decode(url[len(prefix):])
        assert data == expected  # already upright RGB PNG/JPEG: the bytes are sent as they are
        assert list(Image.open(io.BytesIO(data)).convert("RGB").getdata()) == list(
            Image.open(io.BytesIO(expected)).convert("RGB").getdata()
        )
        user = next(m for m in seen[key].messages if m["role"] == "user")
        assert user["content"][0]["type"] == "image_url" and user["content"][0]["image_url"]["detail"] == "auto"
        assert "<image>" in seen[key].user_text and "attached" in seen[key].user_text
    assert "Human user:\n<image>\n\nAI assistant:\nNone" in seen["only"].user_text
    rows = {row["id"]: row for row in lines(out)}
    assert rows["png"]["images"] == ["pic.png"]  # a path relative to the output's folder
    assert Path(out.parent, rows["jpeg"]["images"][0]).is_file()  # in-memory bytes written next to it
    rebuilt = {r.id: r for r in read_records(out)}
    assert Image.open(rebuilt["png"].images[0]).size == (40, 30)


def test_rgba_image_is_sent_as_the_guard_sees_it(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent: white once composited
    path = tmp_path / "alpha.png"
    path.write_bytes(_png(rgba))
    with FakeChatServer(oracle) as server:
        run([make_record("a", images=(str(path),))], tmp_path / "out.jsonl", server)
    url = server.requests[0].image_urls[0]
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.mode == "RGB" and image.getpixel((3, 3)) == (255, 255, 255)


def test_missing_image_fails_that_record_only(tmp_path):
    out = tmp_path / "out.jsonl"
    records = [make_record("a", images=(str(tmp_path / "gone.png"),)), make_record("b")]
    with FakeChatServer(oracle) as server:
        summary = run(records, out, server)
    assert ids_of(server.requests) == ["b"]
    (failed,) = lines(default_rejects_path(out))
    assert failed["id"] == "a" and "gone.png" in failed["reason"]
    assert summary.failed == 1


# ----------------------------------------------------------------------------------- resuming
def test_resume_skips_finished_ids_and_repairs_a_torn_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    records = [make_record(i) for i in ("r0", "r1", "r2")]
    with FakeChatServer(oracle) as server:
        run(records[:1], out, server)
        complete = out.read_bytes()
        out.write_bytes(complete + b'{"id": "r1", "source": "unit", "requ')  # what a kill mid-write leaves
        summary = run(records, out, server)
        sent = ids_of(server.requests)
    assert sent[0] == "r0" and sorted(sent[1:]) == ["r1", "r2"]  # r0 finished: never sent again
    assert (summary.done, summary.done_before) == (2, 1)
    assert sorted(row["id"] for row in lines(out)) == ["r0", "r1", "r2"]
    assert out.read_bytes().startswith(complete)


def test_rejected_attempts_count_across_runs(tmp_path):
    out = tmp_path / "out.jsonl"
    script = Script({"b": [wrong_labels] * 10})
    with FakeChatServer(script) as server:
        first = run([make_record("a"), make_record("b")], out, server, max_attempts=1)
        second = run([make_record("a"), make_record("b")], out, server, max_attempts=1)
        assert ids_of(server.requests).count("b") == 1  # used up: not sent again
        third = run([make_record("a"), make_record("b")], out, server, max_attempts=2)
        assert ids_of(server.requests).count("b") == 2  # one more attempt allowed, not two
    assert (first.done, first.rejected) == (1, 1)
    assert (second.requests, second.done_before, second.rejected_before) == (0, 1, 1)
    assert (third.rejected, third.rejected_attempts["wrong_request_label"]) == (1, 1)


def test_corrupt_line_in_the_middle_is_an_error_not_a_silent_skip(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"out.jsonl, line 2: not valid JSON"):
        AppendLog(out)


def test_duplicate_input_ids_and_concurrent_runs_are_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    with FakeChatServer(oracle) as server:
        with pytest.raises(ValueError, match="'a' appears twice"):
            run([make_record("a"), make_record("a")], out, server)
    with AppendLog(out, lock=True):
        with pytest.raises(ValueError, match="another synthesize run"):
            AppendLog(out, lock=True)


def test_requests_per_minute_spaces_the_starts(tmp_path):
    with FakeChatServer(oracle) as server:
        run([make_record(f"r{i}") for i in range(5)], tmp_path / "out.jsonl", server, concurrency=5,
            max_requests_per_minute=600)
    times = [r.time for r in server.requests]
    assert times[-1] - times[0] >= 4 * 0.1 * 0.8  # 5 starts spaced 0.1 s apart (lower bound only)


# ----------------------------------------------------------------------------------- pure parts
def test_retry_policy_backoff_jitter_and_floor():
    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=8.0, jitter=0.5)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]

    class Fixed:
        def __init__(self, value):
            self.value = value

        def random(self):
            return self.value

    assert policy.delay(3, rng=Fixed(0.0)) == 4.0
    assert policy.delay(3, rng=Fixed(1.0)) == 2.0
    assert policy.delay(1, retry_after=5.0, rng=Fixed(0.0)) == 5.0  # Retry-After is a floor
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=1.5)


def test_parse_retry_after_forms():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_rate_limiter_spacing_and_pause_with_a_fake_clock():
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)

    async def go():
        for _ in range(3):
            await limiter.acquire()
        limiter.pause_for(5.0)
        await limiter.acquire()

    asyncio.run(go())
    assert slept == [0.5, 0.5, 5.0]
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_check_trace_codes():
    good = oracle_trace("harmful", "none")
    assert check_trace(good, request_label="harmful", response_label="none") == good
    cases = {
        "": "empty",
        "<result>\nRequest: harmful\nResponse: None\n</result>": "grammar",
        "<think>x</think><result>Request: harmful / unharmful\nResponse: None</result>": "unreadable_labels",
        "<think>x</think><result>Request: harmful\nRequest: unharmful\nResponse: None</result>": "unreadable_labels",
        oracle_trace("unharmful", "none"): "wrong_request_label",
        oracle_trace("harmful", "harmful"): "wrong_response_label",
        "<think> </think><result>Request: harmful\nResponse: None</result>": "empty_reasoning",
    }
    for text, code in cases.items():
        with pytest.raises(TraceRejected) as info:
            check_trace(text, request_label="harmful", response_label="none")
        assert info.value.code == code, text


def test_template_sections_placeholders_and_errors(tmp_path):
    default = PromptTemplate.load()
    system, user = default.render(make_record("x", response=None))
    assert system and "Request: unharmful\nResponse: None" in user and "Human user:\nTell me about item x." in user
    bare = PromptTemplate.parse("Labels: $expected_result {not a field}")
    assert bare.system is None and bare.render(make_record("x"))[1].endswith("{not a field}")
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) labels"):
        PromptTemplate.parse("[user]\n${labels}")
    with pytest.raises(ValueError, match="no \\[user\\] section"):
        PromptTemplate.parse("[system]\nhi")
    with pytest.raises(FileNotFoundError):
        PromptTemplate.load(tmp_path / "nope.txt")
    every = PromptTemplate.parse("[user]\n" + " ".join(f"${{{name}}}" for name in FIELDS))
    assert "None" in every.render(make_record("x", response=None))[1]


def test_custom_template_is_what_the_server_receives(tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text("[system]\nBe brief.\n[user]\nitem ${request_label}. $transcript\n$expected_result\n")
    with FakeChatServer(oracle) as server:
        synthesize([make_record("a")], output=tmp_path / "o.jsonl", template=PromptTemplate.load(path),
                   settings=SynthesisSettings(base_url=server.base_url, retry=FAST_RETRY))
    (request,) = server.requests
    assert request.messages[0] == {"role": "system", "content": "Be brief."}
    assert request.user_text.startswith("item unharmful. Human user:")


def test_price_table_prefix_match_overrides_and_cost(tmp_path):
    table = load_price_table()
    assert find_price("gpt-4o-mini-2024-07-18", table).input == table["gpt-4o-mini"]["input"]
    assert find_price("gpt-4o-2024-08-06", table).output == table["gpt-4o"]["output"]
    assert find_price("llama-3", table) is None
    custom = tmp_path / "prices.json"
    custom.write_text(json.dumps({"llama-3": {"input": 1, "output": 2}}))
    price = resolve_price("llama-3-70b", table_path=custom)
    assert price.cost(1_000_000, 500_000) == pytest.approx(2.0)
    assert resolve_price("gpt-4o", input_price=0, output_price=0).cost(10**9, 10**9) == 0
    with pytest.raises(ValueError, match="both"):
        resolve_price("gpt-4o", input_price=1.0)
    custom.write_text(json.dumps({"m": {"input": 1}}))
    with pytest.raises(ValueError, match="'m' needs 'input' and 'output'"):
        load_price_table(custom)


def test_redactor_masks_the_key_and_hides_it_from_repr():
    from data_prep.chat_request import Redactor

    redact = Redactor("sk-very-secret-key")
    assert redact("echo: Bearer sk-very-secret-key!") == "echo: Bearer ***!"
    assert "sk-very" not in repr(redact)
    assert "sk-" not in repr(SynthesisSettings())  # the key is never part of the settings

"""The openai backend against a real chat-completions server on 127.0.0.1 (threaded, in-test)."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("openai")
from PIL import Image

from data_prep.prompt import INSTRUCTION
from data_prep.record import GuardRecord
from inference import GenerationRequest, get_backend, request_from_record
from rewards.grammar import format_output

KEY = "sk-test-secret-123"
REPLY = format_output("The request is benign.", "unharmful", None)


class _Server:
    """A minimal OpenAI-compatible server: records every request body, can fail the first k."""

    def __init__(self, *, fail_first: int = 0, fail_status: int = 503, always_fail: bool = False) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.fail_left = fail_first
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.headers.append({"Authorization": self.headers.get("Authorization")})
                    fail = always_fail or server.fail_left > 0
                    if server.fail_left > 0:
                        server.fail_left -= 1
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                elif fail:
                    self._send(fail_status, {"error": {"message": "overloaded", "type": "server_error"}})
                else:
                    n = body.get("n", 1)
                    choices = [
                        {"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"{REPLY} #{body.get('seed')}-{i}"}}
                        for i in range(n)
                    ]  # fmt: skip
                    self._send(200, {
                        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": choices,
                        "usage": {"prompt_tokens": 10, "completion_tokens": 7 * n, "total_tokens": 10 + 7 * n},
                    })  # fmt: skip

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("retry-after-ms", "5")  # keep the client's back-off short
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def _png(color=(10, 200, 30), size=(12, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_text_request_roundtrip_and_usage(api_key):
    record = GuardRecord(id="t1", source="s", request="How do I bake bread?", request_label="unharmful")
    with _Server() as server:
        backend = get_backend("openai", model="guard", base_url=server.url, concurrency=2)
        [[gen]] = backend.generate([request_from_record(record)], max_new_tokens=64, seed=5)
    body = server.bodies[0]
    assert body["model"] == "guard"
    assert body["messages"][0] == {"role": "system", "content": INSTRUCTION}
    assert body["messages"][1]["content"] == "Human user:\nHow do I bake bread?\n\nAI assistant:\nNone\n\n"
    assert body["max_tokens"] == 64 and body["temperature"] == 0.0 and body["seed"] == 5
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert gen.text.startswith(REPLY) and gen.num_tokens == 7


def test_image_arrives_as_data_url_in_place(api_key, tmp_path):
    png = _png()
    path = tmp_path / "img.png"
    path.write_bytes(png)
    pil = Image.new("RGB", (5, 5), (255, 0, 0))
    records = [
        GuardRecord(id="img-path", source="s", request="What is this?", request_label="unharmful", images=(str(path),)),
        GuardRecord(id="img-pil", source="s", request="", request_label="harmful", images=(pil,)),
    ]
    with _Server() as server:
        backend = get_backend("openai", model="guard", base_url=server.url)
        out = backend.generate([request_from_record(r) for r in records])
    assert len(out) == 2
    by_text = {json.dumps(b["messages"][1]["content"]): b for b in server.bodies}
    assert len(by_text) == 2
    for body in server.bodies:
        parts = body["messages"][1]["content"]
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


def test_retries_on_503_and_429_then_succeeds(api_key):
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], key="r")
    for status in (503, 429):
        with _Server(fail_first=2, fail_status=status) as server:
            backend = get_backend("openai", model="guard", base_url=server.url, max_retries=3)
            [[gen]] = backend.generate([request])
        assert len(server.bodies) == 3 and gen.text.startswith(REPLY)


def test_failure_after_retries_raises_naming_request_not_key(api_key):
    request = GenerationRequest(messages=[{"role": "user", "content": "hi"}], key="row-17")
    with _Server(always_fail=True) as server:
        backend = get_backend("openai", model="guard", base_url=server.url, max_retries=1)
        with pytest.raises(RuntimeError, match="row-17") as info:
            backend.generate([request])
    assert len(server.bodies) == 2
    assert KEY not in str(info.value) and KEY not in repr(info.value.__cause__)


def test_n_samples_order_and_per_request_seeds(api_key):
    requests = [GenerationRequest(messages=[{"role": "user", "content": f"q{i}"}], key=str(i)) for i in range(6)]
    with _Server() as server:
        backend = get_backend("openai", model="guard", base_url=server.url, concurrency=3)
        out = backend.generate(requests, n=3, temperature=1.0, top_p=0.95, seed=100)
    assert [len(gens) for gens in out] == [3] * 6
    for i, gens in enumerate(out):
        assert [g.text.rsplit("#", 1)[1] for g in gens] == [f"{100 + i}-{j}" for j in range(3)]
        assert all(g.num_tokens == 0 for g in gens)  # usage is a total over the n choices
    assert all(b["top_p"] == 0.95 and b["n"] == 3 for b in server.bodies)


def test_bad_options_fail_before_any_request(api_key):
    backend = get_backend("openai", model="guard", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="top_p"):
        backend.generate([], top_p=0.0)
    with pytest.raises(ValueError, match="unknown inference backend 'nope'"):
        get_backend("nope")
    with pytest.raises(ValueError, match="placeholder"):
        GenerationRequest(messages=[{"role": "user", "content": "<image> hi"}], images=())

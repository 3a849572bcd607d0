"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1.

Why it ships with the package rather than living in a test file: the tests, the benchmark and an
offline dry run of ``guardreasoner-vl synthesize`` all need the same real HTTP endpoint, and a
user checking a new prompt template wants to see the whole pipeline work before spending money.

It speaks just enough of the protocol for the ``openai`` client: ``POST /v1/chat/completions``
with a JSON body, answered by a *handler* — a function from the :class:`SeenRequest` to a
:class:`Reply` (status, headers, body, delay). Every request is recorded, in arrival order, so a
test can assert what the client really sent (headers, images, how often, when).

The default handler, :func:`oracle`, answers with a well-formed reasoning trace whose labels are
the ones the prompt states (the first ``Request: …`` / ``Response: …`` pair in the user turn, as the
default template writes it through ``${expected_result}``).

Run it by hand (prints its base URL, serves until killed)::

    python -m data_prep.synthesize.fake_server --port 8000 --delay 0.1
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Sequence, Union

from rewards.grammar import format_output

CHAT_PATH = "/v1/chat/completions"
# The labels a prompt states, in the result grammar (the default template's ${expected_result}).
_STATED_LABELS = re.compile(
    r"Request:\s*(harmful|unharmful)\s*\n\s*Response:\s*(harmful|unharmful|none)", re.IGNORECASE
)


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it."""

    #: 0-based arrival order
    index: int
    path: str
    #: header names in lower case
    headers: dict[str, str]
    #: the raw body, and its JSON (None when the body is not JSON)
    raw: bytes
    body: Optional[dict]
    #: ``time.monotonic()`` on arrival
    time: float

    @property
    def messages(self) -> list[dict]:
        return list((self.body or {}).get("messages") or [])

    def _user_parts(self) -> list[Any]:
        parts: list[Any] = []
        for message in self.messages:
            if message.get("role") != "user":
                continue
            content = message.get("content")
            parts.extend(content if isinstance(content, list) else [{"type": "text", "text": content}])
        return parts

    @property
    def user_text(self) -> str:
        """All text of the user turns, joined."""
        return "\n".join(p.get("text") or "" for p in self._user_parts() if p.get("type") == "text")

    @property
    def image_urls(self) -> list[str]:
        """The ``image_url.url`` of every image part of the user turns (data URLs for us)."""
        return [p["image_url"]["url"] for p in self._user_parts() if p.get("type") == "image_url"]


@dataclass(frozen=True)
class Reply:
    """What the server answers: ``body`` as a dict is sent as JSON, bytes/str as they are."""

    status: int = 200
    body: Union[dict, bytes, str, None] = None
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before answering (to exercise client timeouts and concurrency)
    delay: float = 0.0
    content_type: str = "application/json"


Handler = Callable[[SeenRequest], Reply]


def completion_reply(
    text: Union[str, None, Sequence[Optional[str]]],
    *,
    prompt_tokens: int = 100,
    completion_tokens: int = 50,
    finish_reason: Union[str, Sequence[str]] = "stop",
    model: str = "fake-model",
    delay: float = 0.0,
) -> Reply:
    """A successful chat completion carrying ``text`` (None: a message without content).

    A list of texts gives one choice each (as a server answering ``n`` > 1), with ``finish_reason``
    one for all or one per choice; ``completion_tokens`` is the reply's total, as servers report it.
    """
    texts = list(text) if isinstance(text, (list, tuple)) else [text]
    reasons = list(finish_reason) if isinstance(finish_reason, (list, tuple)) else [finish_reason] * len(texts)
    if len(reasons) != len(texts):
        raise ValueError(f"{len(texts)} choices but {len(reasons)} finish reasons")
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "finish_reason": reason, "message": {"role": "assistant", "content": content}}
            for i, (content, reason) in enumerate(zip(texts, reasons))
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Reply(body=body, delay=delay)


def error_reply(status: int, message: str = "error", *, headers: Optional[dict[str, str]] = None, delay: float = 0.0) -> Reply:
    """An error in the API's JSON error shape."""
    body = {"error": {"message": message, "type": "fake_error", "code": status}}
    return Reply(status=status, body=body, headers=dict(headers or {}), delay=delay)


def stated_labels(request: SeenRequest) -> tuple[str, str]:
    """The ``(request, response)`` labels the prompt states; ValueError when it states none."""
    match = _STATED_LABELS.search(request.user_text)
    if match is None:
        raise ValueError("the prompt states no 'Request: …' / 'Response: …' labels")
    return match.group(1).lower(), match.group(2).lower()


def oracle_trace(request_label: str, response_label: str) -> str:
    """A well-formed trace with numbered steps per task ending in the given labels."""
    reasoning = (
        "# Task 1\n\n"
        "## Reasoning Step 1: Read the human user's request.\n"
        f"## Conclusion: The human user's request is {request_label}.\n\n"
        "# Task 2\n\n"
        "## Reasoning Step 1: Read the AI assistant's response.\n"
        f"## Conclusion: The AI assistant's response is {response_label}."
    )
    return format_output(reasoning, request_label, response_label)


def oracle(request: SeenRequest, *, delay: float = 0.0) -> Reply:
    """Answer a valid trace with the labels the prompt states (token counts ~ characters / 4)."""
    try:
        req, resp = stated_labels(request)
    except ValueError as err:
        return error_reply(400, str(err))
    text = oracle_trace(req, resp)
    return completion_reply(
        text, prompt_tokens=max(1, len(request.user_text) // 4), completion_tokens=max(1, len(text) // 4), delay=delay
    )


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses connections as it would with the real API
    # Headers and body go out in separate writes; with Nagle on, each answer would stall ~40 ms
    # on the client's delayed ACK and the benchmark would measure TCP, not the synthesizer.
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        pass  # quiet: tests and benchmarks read the recorded requests instead

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        seen = self.server.fake.record(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body)
        if self.path.rstrip("/") != CHAT_PATH:
            reply = error_reply(404, f"unknown path {self.path}")
        else:
            reply = self.server.fake.handler(seen)
        if reply.delay > 0:
            time.sleep(reply.delay)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, dict):
            payload = json.dumps(reply.body).encode()
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        else:
            payload = reply.body or b""
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired) before the delayed answer: expected in tests.
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the benchmark opens 64+ connections at once
    fake: "FakeChatServer"


class FakeChatServer:
    """A chat-completions server on 127.0.0.1 in a background thread; use as a context manager.

    Parameters
    ----------
    handler : callable, default=oracle
        ``SeenRequest -> Reply``; called from the server's request threads (make it thread-safe).
    port : int, default=0
        0 picks a free port.
    """

    def __init__(self, handler: Handler = oracle, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []
        self._server = _Server((host, port), _RequestHandler)
        self._server.fake = self
        self._thread: Optional[threading.Thread] = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[SeenRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def record(self, path: str, headers: dict[str, str], raw: bytes, body: Optional[dict]) -> SeenRequest:
        with self._lock:
            seen = SeenRequest(len(self._requests), path, headers, raw, body, time.monotonic())
            self._requests.append(seen)
        return seen

    def start(self) -> "FakeChatServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-chat-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "FakeChatServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Serve oracle reasoning traces on 127.0.0.1 (offline dry runs).")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer (default: 0)")
    args = parser.parse_args(argv)
    server = FakeChatServer(lambda r: oracle(r, delay=args.delay), port=args.port)
    print(server.base_url, flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The OpenAI-compatible chat-completions request, built in one place for every client.

Synthesis (:mod:`data_prep.synthesize`) and the ``openai`` inference backend (evaluation,
``moderate``, mining) talk to servers that all speak the chat-completions protocol but do not honour
the same fields. What each does, read from its source (transformers 5.10 ``transformers serve``,
vLLM's and SGLang's ``ChatCompletionRequest``, the ``openai`` client's parameter docs) and, for
``transformers serve``, checked against a running server:

- **the token limit.** The official API takes ``max_completion_tokens``; ``max_tokens`` is
  deprecated there and refused by its reasoning models. vLLM and SGLang take both (the first wins).
  ``transformers serve`` applies only ``max_tokens`` and ignores ``max_completion_tokens``, so a
  client that sends only the latter gets its default of at least 1,024 tokens per answer;
- **sampling defaults.** vLLM and SGLang fill every sampling field a request leaves out
  (``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repetition_penalty``) from the checkpoint's
  ``generation_config.json``; Qwen2-VL-family Instruct checkpoints ship near-greedy values there
  (``top_k`` 1, ``repetition_penalty`` 1.05), under which k samples come out identical. So every
  field is sent: ``top_k`` off (-1, which both accept), ``min_p`` 0, ``repetition_penalty`` 1;
- **transformers serve** refuses ``top_k``, ``min_p`` and ``repetition_penalty`` with 422
  ("Unexpected fields in the request") and samples only when the checkpoint's
  ``generation_config.json`` says ``do_sample``, whatever the ``temperature``; its own extension, a
  ``generation_config`` JSON string, replaces those defaults, so the same values travel there. It
  ignores ``n`` (one choice per request) and seeds one global torch RNG;
- **the official API** refuses fields it does not know (400), so it gets the standard ones only.

Hence three request forms, one per :data:`SERVER_KINDS` entry; ``auto`` picks ``openai`` for the
official API's hosts and ``vllm`` (which SGLang shares) for every other URL.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Optional
from urllib.parse import urlparse

from data_prep.images import image_size, prepare_image

#: ``--server-kind`` choices; see the module docstring.
SERVER_KINDS = ("auto", "openai", "vllm", "transformers")
#: Hosts of the official API (OpenAI's and Azure OpenAI's): standard fields only.
_OFFICIAL_HOSTS = ("api.openai.com",)
_OFFICIAL_HOST_SUFFIXES = (".openai.azure.com",)
#: The sampling fields outside the official API that a checkpoint's generation_config.json may set.
EXTENSION_FIELDS = ("top_k", "min_p", "repetition_penalty")
#: ``top_k`` switched off: -1 for vLLM (which also takes 0) and SGLang (which takes only -1).
TOP_K_OFF = -1
_MIME = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"))


def resolve_server_kind(kind: str, base_url: Optional[str]) -> str:
    """The request form for ``base_url``: ``kind`` itself unless it is ``auto``.

    ``auto`` is ``openai`` for ``api.openai.com`` and ``*.openai.azure.com``, else ``vllm``
    (vLLM, SGLang and most gateways in front of them); ``transformers serve`` must be named.
    """
    if kind not in SERVER_KINDS:
        raise ValueError(f"server kind must be one of {', '.join(SERVER_KINDS)}, got {kind!r}")
    if kind != "auto":
        return kind
    host = (urlparse(base_url or "").hostname or "").lower()
    official = host in _OFFICIAL_HOSTS or host.endswith(_OFFICIAL_HOST_SUFFIXES)
    return "openai" if official else "vllm"


def request_options(
    kind: str,
    *,
    max_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    n: int = 1,
    seed: Optional[int] = None,
) -> dict[str, Any]:
    """The body fields (besides ``model`` and ``messages``) of one request to a ``kind`` server.

    Every sampling parameter is explicit, so nothing from the checkpoint's
    ``generation_config.json`` leaks in: ``temperature`` 0 is greedy, otherwise pure temperature /
    nucleus sampling with ``top_k``, ``min_p`` and ``repetition_penalty`` neutral where the server
    takes them. ``seed`` is omitted when None.

    >>> request_options("vllm", max_tokens=64, temperature=0.0)["max_tokens"]
    64
    >>> sorted(request_options("openai", max_tokens=64, temperature=1.0))
    ['max_completion_tokens', 'n', 'temperature', 'top_p']
    """
    if kind not in SERVER_KINDS[1:]:
        raise ValueError(f"server kind must be one of {', '.join(SERVER_KINDS[1:])} (resolve 'auto' first), got {kind!r}")
    options: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "n": n}
    if seed is not None:
        options["seed"] = seed
    if kind == "openai":
        options["max_completion_tokens"] = max_tokens
    elif kind == "vllm":
        options.update(max_tokens=max_tokens, max_completion_tokens=max_tokens,
                       top_k=TOP_K_OFF, min_p=0.0, repetition_penalty=1.0)  # fmt: skip
    else:  # transformers serve: its generation_config replaces the checkpoint's sampling defaults
        greedy = temperature == 0
        config: dict[str, Any] = {"do_sample": not greedy, "max_new_tokens": max_tokens, "repetition_penalty": 1.0}
        if not greedy:
            config.update(temperature=temperature, top_p=top_p, top_k=0, min_p=0.0)
        options.update(max_tokens=max_tokens, generation_config=json.dumps(config))
    return options


def server_kind_hint(message: str) -> str:
    """A hint to append to a server's 400/422 message when it refuses the extension fields."""
    if any(name in message for name in EXTENSION_FIELDS):
        return (" (the server refused the sampling fields vLLM takes: for `transformers serve` pass "
                "--server-kind transformers, for OpenAI's API or a gateway to it --server-kind openai)")  # fmt: skip
    return ""


def error_message(err: Any) -> str:
    """The server's own words from an ``openai.APIStatusError``: the OpenAI-style ``error.message``,
    FastAPI's ``detail`` (vLLM, ``transformers serve``), else the body or the client's message."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
        return json.dumps(body)[:500]
    return str(getattr(err, "message", None) or err)


class Redactor:
    """Masks a secret (the API key) in any text; its repr never shows the secret.

    Every message a client path writes or raises passes through one: servers do echo keys back.
    """

    def __init__(self, secret: Optional[str]) -> None:
        self._secret = secret if secret and len(secret) >= 4 else None

    def __call__(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def __repr__(self) -> str:
        return "Redactor(***)"


def image_data_url(
    image: Any,
    *,
    row_id: str,
    field: str = "images[0]",
    max_side: Optional[int] = None,
    max_pixels: Optional[int] = None,
) -> str:
    """A ``data:image/...;base64,...`` URL of the image as the guard sees it.

    Goes through :func:`data_prep.images.prepare_image` (upright RGB, transparency on white,
    PNG/JPEG): the image is validated and normalised as for training data, PNG/JPEG bytes that
    need no change are sent as they are, and a larger image is first shrunk, keeping its aspect
    ratio, to ``max_side`` on its longer side and to about ``max_pixels`` pixels (the pixel budget
    a local processor would apply; the server's processor then sees no more). A missing or corrupt
    image raises ``RowError`` (a ``ValueError``) naming the row and field.
    """
    if max_pixels is not None:
        width, height = image_size(image, row_id=row_id, field=field)
        if width * height > max_pixels:
            side = max(1, math.floor(max(width, height) * math.sqrt(max_pixels / (width * height))))
            max_side = side if max_side is None else min(max_side, side)
    data = prepare_image(image, row_id=row_id, field=field, max_side=max_side).data
    mime = next((m for magic, m in _MIME if data.startswith(magic)), None)
    if mime is None:  # prepare_image emits only PNG or JPEG; anything else is a bug worth naming
        raise ValueError(f"row {row_id!r}, {field}: encoded image is neither PNG nor JPEG")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

"""The ``openai`` backend: any OpenAI-compatible chat-completions server (``vllm serve``, SGLang, ...).

The usual way to evaluate at paper scale: serve the checkpoint with ``vllm serve MODEL`` and point
this backend at it. Images travel inline as base64 data URLs, placed where ``<image>`` stands in the
transcript. Requests run on a bounded thread pool; the OpenAI client retries 408/409/429/5xx and
timeouts with exponential back-off (``max_retries``). A request that still fails raises: a failed
generation is never turned into an empty output (that would be scored as a parse failure, or worse,
become a training target).

The API key is read from ``OPENAI_API_KEY`` (``EMPTY`` when unset, which ``vllm serve`` accepts
unless started with ``--api-key``); it is never logged or written anywhere.
"""

from __future__ import annotations

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

from data_prep.images import prepare_image
from data_prep.prompt import to_structured_content
from inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    Generation,
    GenerationRequest,
    check_sampling,
)

#: Where ``vllm serve`` listens by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def image_data_url(image: Any, *, key: str = "") -> str:
    """A ``data:image/...;base64,...`` URL for a PIL image, encoded bytes, a dict or a path.

    Goes through :func:`data_prep.images.prepare_image`: the image is validated and normalised as
    for training data, and PNG/JPEG bytes that need no change are sent as they are (no re-encode).
    """
    data = prepare_image(image, row_id=key or "?", field="images").data
    mime = "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def to_openai_messages(request: GenerationRequest) -> list[dict[str, Any]]:
    """Chat-completions messages: ``<image>`` placeholders become ``image_url`` parts, in order."""
    images = iter(request.images)
    messages = []
    for message in to_structured_content(request.messages):
        content = message["content"]
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image":
                    url = image_data_url(next(images), key=request.key)
                    parts.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    parts.append(part)
            content = parts
        messages.append({"role": message["role"], "content": content})
    return messages


class OpenAIBackend:
    """Chat completions against an OpenAI-compatible server.

    Parameters
    ----------
    model : str
        The served model name (``vllm serve PATH`` serves it as ``PATH`` unless
        ``--served-model-name`` is given).
    base_url : str, optional
        Defaults to ``$OPENAI_BASE_URL``, else ``http://127.0.0.1:8000/v1``.
    concurrency : int, default=16
        Requests in flight at once.
    max_retries : int, default=5
        Retries per request on 408/409/429/5xx and timeouts (exponential back-off, by the client).
    timeout : float, default=600
        Seconds per request attempt.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str] = None,
        concurrency: int = 16,
        max_retries: int = 5,
        timeout: float = 600.0,
    ) -> None:
        import openai

        if not model:
            raise ValueError("the openai backend needs a model name (the server's served model name)")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model = model
        self.concurrency = concurrency
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
            max_retries=max_retries,
            timeout=timeout,
        )

    def _complete(self, request: GenerationRequest, n: int, options: dict[str, Any]) -> list[Generation]:
        import openai

        try:
            reply = self._client.chat.completions.create(
                model=self.model, messages=to_openai_messages(request), n=n, **options
            )
        except openai.APIError as err:
            # The message names the request and the server's answer, never the key.
            raise RuntimeError(f"request {request.key!r}: chat completion failed at {self.base_url}: {err}") from err
        choices = sorted(reply.choices, key=lambda c: c.index)
        if len(choices) != n:
            raise RuntimeError(f"request {request.key!r}: asked for {n} choices, server returned {len(choices)}")
        # usage is per reply; split per choice only when it is unambiguous.
        usage = getattr(reply, "usage", None)
        tokens = int(usage.completion_tokens) if (usage is not None and n == 1 and usage.completion_tokens) else 0
        return [Generation(c.message.content or "", tokens) for c in choices]

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: Optional[int] = None,
    ) -> list[list[Generation]]:
        """See :class:`~inference.base.InferenceBackend`.

        ``num_tokens`` comes from the server's ``usage.completion_tokens`` when ``n == 1`` and is 0
        otherwise (servers report one total for all choices). With ``seed``, request ``i`` is sent
        ``seed + i`` so samples differ across requests yet repeat across runs.
        """
        check_sampling(n, temperature, top_p, max_new_tokens)
        base: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}

        def one(i: int) -> list[Generation]:
            options = dict(base)
            if seed is not None:
                options["seed"] = seed + i
            return self._complete(requests[i], n, options)

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(requests)))) as pool:
            return list(pool.map(one, range(len(requests))))

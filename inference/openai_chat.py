"""The ``openai`` backend: any OpenAI-compatible chat-completions server (``vllm serve``, SGLang,
``transformers serve``, the OpenAI API, a gateway).

The usual way to evaluate at paper scale: serve the checkpoint with ``vllm serve MODEL`` and point
this backend at it. Images travel inline as base64 data URLs, placed where ``<image>`` stands in the
transcript (shrunk first to ``max_pixels``, the budget the other backends hand their processor).
Requests run on a bounded thread pool; the OpenAI client retries 408/409/429/5xx and timeouts with
exponential back-off (``max_retries``). A request that still fails raises: a failed generation is
never turned into an empty output (that would be scored as a parse failure, or worse, become a
training target).

- **The request** is built by :func:`data_prep.chat_request.request_options`, as synthesis builds
  it: the token limit and every sampling field in the form the server's kind honours
  (``server_kind``), so the checkpoint's ``generation_config.json`` never decides how we sample.
- **Choices.** ``n`` samples are asked for in one request. A server may return fewer
  (``transformers serve`` always returns one): the missing ones are asked for again, with the next
  unused seeds, until there are ``n``; this is logged once per backend. Greedy decoding asks for one
  and copies it.
- **Token counts.** A server reports one ``usage.completion_tokens`` for all the choices of a reply;
  :func:`apportion_tokens` splits it, so sums and means over outputs are exact and a single count
  with ``n`` > 1 is an estimate.

The API key is read from ``OPENAI_API_KEY`` (``EMPTY`` when unset, which ``vllm serve`` accepts
unless started with ``--api-key``); it is never logged or written anywhere.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

from data_prep.chat_request import Redactor, error_message, image_data_url, request_options, resolve_server_kind, server_kind_hint
from data_prep.prompt import to_structured_content
from inference.base import (
    DEFAULT_MAX_NEW_TOKENS,
    FINISH_LENGTH,
    FINISH_PROMPT_TOO_LONG,
    Generation,
    GenerationRequest,
    check_sampling,
    request_seed,
)

log = logging.getLogger(__name__)

#: Where ``vllm serve`` listens by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
CHAT_COMPLETIONS_PATH = "/chat/completions"

#: A choice as a server returns it: its text and ``finish_reason``.
Choice = tuple[str, Optional[str]]
#: How vLLM, SGLang and the OpenAI API word a 400 for a prompt longer than the model's context.
CONTEXT_LENGTH_MARKERS = ("maximum context length", "context_length_exceeded")


class PromptTooLong(RuntimeError):
    """The server refused one prompt as longer than the model's context (that row only)."""


def to_openai_messages(request: GenerationRequest, *, max_pixels: Optional[int] = None) -> list[dict[str, Any]]:
    """Chat-completions messages: ``<image>`` placeholders become ``image_url`` parts, in order."""
    images = iter(enumerate(request.images))
    messages = []
    for message in to_structured_content(request.messages):
        content = message["content"]
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image":
                    index, image = next(images)
                    url = image_data_url(image, row_id=request.key or "?", field=f"images[{index}]", max_pixels=max_pixels)
                    parts.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    parts.append(part)
            content = parts
        messages.append({"role": message["role"], "content": content})
    return messages


def apportion_tokens(total: Optional[int], choices: Sequence[Choice], limit: int) -> list[int]:
    """Split a reply's ``usage.completion_tokens`` over its choices; the shares add up to ``total``.

    A choice cut at the limit (``finish_reason`` ``length``) generated exactly ``limit`` tokens; the
    rest of the total is shared among the other choices in proportion to their text lengths (largest
    remainder, none above ``limit`` while another has room). All 0 when the server reports no usage.

    >>> apportion_tokens(30, [("a" * 10, "stop"), ("b" * 20, "stop")], limit=64)
    [10, 20]
    >>> apportion_tokens(80, [("short", "stop"), ("cut off", "length")], limit=64)
    [16, 64]
    """
    count = len(choices)
    if not total or total < 0:
        return [0] * count
    shares = [0] * count
    cut = [i for i, (_, reason) in enumerate(choices) if reason == FINISH_LENGTH]
    free = [i for i in range(count) if i not in cut]
    if cut and free and len(cut) * limit <= total:
        for i in cut:
            shares[i] = limit
    else:  # all cut, none cut, or a total the limit cannot explain: share everything
        free = list(range(count))
    left = total - sum(shares)
    weights = {i: max(1, len(choices[i][0])) for i in free}
    while left > 0 and free:
        quota = {i: left * weights[i] / sum(weights[j] for j in free) for i in free}
        given = {i: min(int(quota[i]), limit - shares[i]) for i in free}
        for i in sorted(free, key=lambda j: quota[j] - int(quota[j]), reverse=True):
            if sum(given.values()) < left and shares[i] + given[i] < limit:
                given[i] += 1
        if not any(given.values()):
            break
        for i in free:
            shares[i] += given[i]
        left -= sum(given.values())
        free = [i for i in free if shares[i] < limit]
    shares[-1] += left  # only a total above count * limit leaves a rest: keep the sum exact
    return shares


class OpenAIBackend:
    """Chat completions against an OpenAI-compatible server.

    Parameters
    ----------
    model : str
        The served model name (``vllm serve PATH`` serves it as ``PATH`` unless
        ``--served-model-name`` is given; ``transformers serve PATH`` only as ``PATH``).
    base_url : str, optional
        Defaults to ``$OPENAI_BASE_URL``, else ``http://127.0.0.1:8000/v1``.
    server_kind : str, default="auto"
        The request form (:data:`data_prep.chat_request.SERVER_KINDS`): ``openai`` for the official
        API, ``vllm`` for vLLM and SGLang, ``transformers`` for ``transformers serve``; ``auto``
        picks ``openai`` for the official API's hosts and ``vllm`` otherwise.
    concurrency : int, default=16
        Requests in flight at once.
    max_retries : int, default=5
        Retries per request on 408/409/429/5xx and timeouts (exponential back-off, by the client).
    timeout : float, default=600
        Seconds per request attempt.
    max_pixels : int, optional
        Shrink larger images to about this many pixels before sending (the ``hf``/``vllm``
        backends' pixel budget); default: send them as they are (the server's processor decides).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: Optional[str] = None,
        server_kind: str = "auto",
        concurrency: int = 16,
        max_retries: int = 5,
        timeout: float = 600.0,
        max_pixels: Optional[int] = None,
    ) -> None:
        import openai

        if not model:
            raise ValueError("the openai backend needs a model name (the server's served model name)")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if max_pixels is not None and max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
        self.model = model
        self.concurrency = concurrency
        self.max_pixels = max_pixels
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.server_kind = resolve_server_kind(server_kind, self.base_url)
        api_key = os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._redact = Redactor(api_key)
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=max_retries, timeout=timeout)
        self._short_noted = threading.Event()

    def _post(self, request: GenerationRequest, messages: list, options: dict[str, Any]) -> tuple[list[Choice], Optional[int]]:
        """One chat completion: its choices in index order and the reply's completion-token total."""
        import openai

        where = f"request {request.key!r}: chat completion failed at {self.base_url}"
        try:
            body = self._client.post(
                CHAT_COMPLETIONS_PATH, body={"model": self.model, "messages": messages, **options}, cast_to=object
            )
        except openai.APIStatusError as err:
            # The message names the request and the server's answer, never the key (a server may
            # echo it: redacted, and the client's exception is not chained).
            message = self._redact(error_message(err))
            if err.status_code == 400 and any(marker in message.lower() for marker in CONTEXT_LENGTH_MARKERS):
                raise PromptTooLong(f"{where}: {message}") from None
            raise RuntimeError(f"{where}: HTTP {err.status_code}: {message}{server_kind_hint(message)}") from None
        except openai.APIError as err:
            raise RuntimeError(f"{where}: {self._redact(str(err))}") from None
        try:
            raw = sorted(body["choices"], key=lambda c: c.get("index", 0))
            choices = [(c["message"].get("content") or "", c.get("finish_reason")) for c in raw]
        except (AttributeError, KeyError, TypeError):
            raise RuntimeError(f"{where}: malformed reply (no choices[].message): {str(body)[:200]}") from None
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        total = usage.get("completion_tokens")
        return choices, total if isinstance(total, int) and not isinstance(total, bool) else None

    def _complete(
        self, request: GenerationRequest, *, n: int, seed: Optional[int], max_new_tokens: int, **sampling: float
    ) -> list[Generation]:
        """``n`` generations for one request; ``n`` refused ones if the server finds the prompt too long."""
        messages = to_openai_messages(request, max_pixels=self.max_pixels)
        wanted = 1 if sampling["temperature"] == 0 else n  # greedy: one answer, copied
        try:
            gens = self._collect(request, messages, wanted, seed=seed, max_new_tokens=max_new_tokens, **sampling)
        except PromptTooLong as err:  # refuse this row alone, as the vllm backend does, never the batch
            log.warning("%s; refused", err)
            return [Generation("", 0, FINISH_PROMPT_TOO_LONG)] * n
        return gens * n if wanted == 1 else gens

    def _collect(
        self, request: GenerationRequest, messages: list, wanted: int, *, seed: Optional[int], max_new_tokens: int,
        **sampling: float,
    ) -> list[Generation]:
        """``wanted`` generations, asking again while the server returns fewer choices than asked for."""
        gens: list[Generation] = []
        while len(gens) < wanted:
            ask = wanted - len(gens)
            options = request_options(
                self.server_kind, max_tokens=max_new_tokens, n=ask,
                seed=None if seed is None else seed + len(gens), **sampling,
            )  # fmt: skip
            choices, total = self._post(request, messages, options)
            if not choices:
                raise RuntimeError(f"request {request.key!r}: the server at {self.base_url} returned no choices")
            counts = apportion_tokens(total, choices, max_new_tokens)
            gens += [Generation(text, count, reason) for (text, reason), count in zip(choices, counts)][:ask]
            if len(gens) < wanted and not self._short_noted.is_set():
                self._short_noted.set()
                log.warning(
                    "%s returned %d of the %d choices asked for; asking again for the missing ones "
                    "(one request per missing sample where need be; said once)", self.base_url, len(choices), ask,
                )  # fmt: skip
        return gens

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

        ``num_tokens`` comes from the server's ``usage.completion_tokens`` (split over the choices
        of a reply by :func:`apportion_tokens`), ``finish_reason`` from each choice. With ``seed``,
        request ``i`` owns the seeds ``seed + i*n`` onwards (:func:`~inference.base.request_seed`):
        samples differ across requests and follow-ups, yet repeat across runs.
        """
        check_sampling(n, temperature, top_p, max_new_tokens)

        def one(i: int) -> list[Generation]:
            return self._complete(requests[i], n=n, seed=request_seed(seed, i, n), max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_p=top_p)  # fmt: skip

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(requests)))) as pool:
            return list(pool.map(one, range(len(requests))))

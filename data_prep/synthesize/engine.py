"""The synthesis run: bounded concurrent requests, validation, retries, and a resumable journal.

One :class:`openai.AsyncOpenAI` client serves the whole run (its connection pool is reused by every
request); its own retries are off so :mod:`.retry` is the only policy. ``concurrency`` worker tasks
take records from a bounded queue, so neither the input nor the results are ever held in memory as
a whole. Each finished record is appended to the output JSONL at once (see :mod:`.journal` for the
durability policy), so a run killed at any moment resumes where it stopped:

- ids already in the output are skipped (never requested again);
- rejected attempts recorded in the rejects file count towards ``max_attempts`` across runs;
- records that failed (transport errors that outlasted the retries, bad requests) are tried again.

Output lines use the records-JSONL schema of :mod:`data_prep.records_io` (every
:class:`~data_prep.record.GuardRecord` field, images as paths relative to the output's folder),
with ``reasoning`` set to the validated guard output and ``meta["synthesis"]`` saying how it was
made. The API key is never stored here beyond the client, and every reason this module writes or
logs passes through a redactor that masks it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from data_prep.chat_request import (
    SERVER_KINDS,
    Redactor,
    error_message,
    image_data_url,
    request_options,
    resolve_server_kind,
    server_kind_hint,
)
from data_prep.record import GuardRecord
from data_prep.records_io import record_to_json
from data_prep.synthesize.journal import FAILED, REJECTED, AppendLog, ResumeState
from data_prep.synthesize.pricing import Price
from data_prep.synthesize.retry import (
    FatalAPIError,
    RateLimiter,
    RecordError,
    RetryPolicy,
    TransientError,
    classify_status,
)
from data_prep.synthesize.template import PromptTemplate
from data_prep.synthesize.validate import TraceRejected, check_trace

log = logging.getLogger(__name__)

#: The official API; ``base_url=None`` means this.
OPENAI_BASE_URL = "https://api.openai.com/v1"
CHAT_COMPLETIONS_PATH = "/chat/completions"
IMAGE_DETAILS = ("auto", "low", "high")
HTTP_BACKENDS = ("auto", "aiohttp", "httpx")
_MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class SynthesisSettings:
    """Everything a run needs except the API key (which never enters a settings object or its repr).

    See docs/synthesis.md for each option's meaning, default and paper value.
    """

    model: str = "gpt-4o"
    base_url: Optional[str] = None
    #: request form (:mod:`data_prep.chat_request`): ``auto`` = ``openai`` for the official API, else ``vllm``
    server_kind: str = "auto"
    temperature: float = 0.7
    max_tokens: int = 2048
    max_attempts: int = 3
    concurrency: int = 16
    timeout: float = 120.0
    max_requests_per_minute: Optional[float] = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fsync_interval: float = 1.0
    image_detail: str = "auto"
    max_image_side: Optional[int] = None
    #: seeds the backoff jitter (None: not reproducible, which is what production wants)
    jitter_seed: Optional[int] = None
    #: HTTP transport under the openai client: ``aiohttp`` (``openai[aiohttp]``), ``httpx``, or
    #: ``auto`` = aiohttp when installed. aiohttp costs ~40% less CPU per request at high concurrency.
    http_backend: str = "auto"

    def __post_init__(self) -> None:
        checks = (
            ("max_tokens", self.max_tokens >= 1),
            ("max_attempts", self.max_attempts >= 1),
            ("concurrency", self.concurrency >= 1),
            ("timeout", self.timeout > 0),
            ("temperature", 0 <= self.temperature <= 2),
            ("max_requests_per_minute", self.max_requests_per_minute is None or self.max_requests_per_minute > 0),
            ("fsync_interval", self.fsync_interval >= 0),
            ("max_image_side", self.max_image_side is None or self.max_image_side >= 28),
        )
        for name, ok in checks:
            if not ok:
                raise ValueError(f"invalid {name}: {getattr(self, name)!r}")
        if self.http_backend not in HTTP_BACKENDS:
            raise ValueError(f"http_backend must be one of {', '.join(HTTP_BACKENDS)}, got {self.http_backend!r}")
        if self.server_kind not in SERVER_KINDS:
            raise ValueError(f"server_kind must be one of {', '.join(SERVER_KINDS)}, got {self.server_kind!r}")
        if self.image_detail not in IMAGE_DETAILS:
            raise ValueError(f"image_detail must be one of {', '.join(IMAGE_DETAILS)}, got {self.image_detail!r}")


@dataclass
class SynthesisSummary:
    """Counts of one run (tokens and requests: this run only)."""

    model: str
    #: accepted this run
    done: int = 0
    #: already in the output from earlier runs (skipped)
    done_before: int = 0
    #: every attempt rejected (this run gave up on them)
    rejected: int = 0
    #: every attempt rejected in earlier runs (skipped)
    rejected_before: int = 0
    #: transport errors past the retries, or a bad request/image
    failed: int = 0
    #: rejected attempts by reason code
    rejected_attempts: Counter = field(default_factory=Counter)
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: completions that reported no token usage (cost is then an underestimate)
    missing_usage: int = 0

    def as_dict(self, price: Optional[Price] = None) -> dict[str, Any]:
        out = asdict(self)
        out["rejected_attempts"] = dict(self.rejected_attempts)
        out["cost_usd"] = None if price is None else round(price.cost(self.prompt_tokens, self.completion_tokens), 6)
        out["price"] = None if price is None else {"input": price.input, "output": price.output, "origin": price.origin}
        return out

    def format(self, price: Optional[Price] = None) -> str:
        """The closing summary: counts, tokens and estimated cost."""
        earlier = []
        if self.done_before:
            earlier.append(f"{self.done_before:,} done")
        if self.rejected_before:
            earlier.append(f"{self.rejected_before:,} rejected")
        lines = [
            f"done {self.done:,}, rejected {self.rejected:,}, failed {self.failed:,}"
            + (f" (skipped from earlier runs: {', '.join(earlier)})" if earlier else "")
            + f"; {self.requests:,} requests, {self.retries:,} retries"
        ]
        if self.rejected_attempts:
            reasons = ", ".join(f"{code} {n:,}" for code, n in self.rejected_attempts.most_common())
            lines.append(f"rejected attempts: {reasons}")
        tokens = f"tokens: prompt {self.prompt_tokens:,}, completion {self.completion_tokens:,}"
        if self.missing_usage:
            tokens += f" ({self.missing_usage:,} responses reported no usage)"
        if price is None:
            cost = f"est. cost: unknown (no price for {self.model!r}; use --price-table or --price-input/--price-output)"
        else:
            cost = (
                f"est. cost ${price.cost(self.prompt_tokens, self.completion_tokens):,.2f} "
                f"(${price.input:g} / ${price.output:g} per 1M input / output tokens, {price.origin})"
            )
        lines.append(f"{tokens}; {cost}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Reply:
    text: Optional[str]
    finish_reason: Optional[str]
    prompt_tokens: Optional[int]
    completion_tokens: Optional[int]


def build_request_messages(
    record: GuardRecord, template: PromptTemplate, *, image_detail: str = "auto", max_image_side: Optional[int] = None
) -> list[dict[str, Any]]:
    """The chat messages for one record: optional system text, user images (data URLs) then text."""
    system, user = template.render(record)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    if not record.images:
        messages.append({"role": "user", "content": user})
        return messages
    content: list[dict[str, Any]] = [
        {
            "type": "image_url",
            "image_url": {
                "url": image_data_url(image, row_id=record.id, field=f"images[{i}]", max_side=max_image_side),
                "detail": image_detail,
            },
        }
        for i, image in enumerate(record.images)
    ]
    content.append({"type": "text", "text": user})
    messages.append({"role": "user", "content": content})
    return messages


def _read_completion(body: Any) -> _Reply:
    """The text, finish reason and usage of a chat-completion JSON body; anything else is malformed."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"]
        finish_reason = choice.get("finish_reason")
    except (AttributeError, IndexError, KeyError, TypeError):
        raise TransientError("malformed response: no choices[0].message") from None
    if text is not None and not isinstance(text, str):
        raise TransientError(f"malformed response: message content is {type(text).__name__}, not text")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return _Reply(text, finish_reason, _int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens")))


def _int_or_none(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _absolute_images(record: GuardRecord) -> GuardRecord:
    """Image paths made absolute, so the output can be written to any folder."""
    images = tuple(str(Path(i).resolve()) if isinstance(i, (str, os.PathLike)) else i for i in record.images)
    return record.evolve(images=images) if images != record.images else record


class _Run:
    """One synthesis run (the state shared by its workers, all on one event loop)."""

    def __init__(
        self,
        *,
        client: Any,
        settings: SynthesisSettings,
        template: PromptTemplate,
        output: AppendLog,
        rejects: AppendLog,
        state: ResumeState,
        redact: Redactor,
        progress: Any,
    ) -> None:
        self.client = client
        self.settings = settings
        self.template = template
        self.output = output
        self.rejects = rejects
        self.state = state
        self.redact = redact
        self.progress = progress
        self.limiter = RateLimiter(settings.max_requests_per_minute)
        self.rng = random.Random(settings.jitter_seed)
        self.summary = SynthesisSummary(model=settings.model)
        self.server_kind = resolve_server_kind(settings.server_kind, settings.base_url or OPENAI_BASE_URL)
        # Sent with every request: the limit in the form this kind of server honours, and every
        # sampling field explicit (top_p 1, top_k off, ...) so the checkpoint's defaults never apply.
        self.options = request_options(self.server_kind, max_tokens=settings.max_tokens, temperature=settings.temperature)

    # ------------------------------------------------------------------ transport
    async def _send_once(self, messages: list[dict[str, Any]]) -> _Reply:
        import openai

        body = {"model": self.settings.model, "messages": messages, **self.options}
        try:
            # The client's generic ``post`` sends exactly what ``chat.completions.create`` would, but
            # skips its per-request deep transform of the messages and the typed reply models:
            # ~40% of the client's CPU per request, the bottleneck at concurrency 64 (benchmark).
            # Auth, base URL, timeouts and the mapping of HTTP errors to exceptions are unchanged.
            completion = await asyncio.wait_for(
                self.client.post(CHAT_COMPLETIONS_PATH, body=body, cast_to=object), timeout=self.settings.timeout
            )
        except (asyncio.TimeoutError, openai.APITimeoutError):
            raise TransientError(f"no answer within --timeout {self.settings.timeout:g}s") from None
        except openai.APIConnectionError as err:
            raise TransientError(f"connection error: {err}") from None
        except openai.APIStatusError as err:
            message = error_message(err)
            hint = server_kind_hint(message) if err.status_code in (400, 422) and self.server_kind == "vllm" else ""
            if hint:  # the server refuses fields every request carries: no request could succeed
                raise FatalAPIError(f"HTTP {err.status_code}: {message}{hint}") from None
            raise classify_status(err.status_code, message, err.response.headers) from None
        except json.JSONDecodeError as err:
            raise TransientError(f"malformed response: body is not valid JSON ({err.msg})") from None
        return _read_completion(completion)

    async def send(self, messages: list[dict[str, Any]], record_id: str) -> _Reply:
        """One completion, retrying transient errors; raises RecordError once retries run out."""
        policy = self.settings.retry
        retry = 0
        while True:
            await self.limiter.acquire()
            self.summary.requests += 1
            try:
                return await self._send_once(messages)
            except TransientError as err:
                retry += 1
                if retry > policy.max_retries:
                    raise RecordError(f"gave up after {retry} tries: {err.reason}") from None
                if err.retry_after is not None:
                    self.limiter.pause_for(err.retry_after)
                delay = policy.delay(retry, retry_after=err.retry_after, rng=self.rng)
                self.summary.retries += 1
                log.info("record %r: %s; retry %d in %.2fs", record_id, self.redact(err.reason), retry, delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ records
    def _reason(self, text: str) -> str:
        return self.redact(text)[:_MAX_REASON_CHARS]

    def _fail(self, record: GuardRecord, reason: str) -> None:
        self.rejects.append({"id": record.id, "kind": FAILED, "reason": self._reason(reason), "model": self.settings.model})
        self.summary.failed += 1
        log.warning("record %r failed: %s", record.id, self._reason(reason))

    async def process(self, record: GuardRecord) -> None:
        settings = self.settings
        try:
            build = lambda: build_request_messages(  # noqa: E731 - one call, run off the loop for images
                record, self.template, image_detail=settings.image_detail, max_image_side=settings.max_image_side
            )
            messages = await asyncio.to_thread(build) if record.images else build()
        except (ValueError, RecordError) as err:  # missing/corrupt image, template field errors
            self._fail(record, str(err))
            return
        attempt = self.state.rejected_attempts[record.id]
        while attempt < settings.max_attempts:
            attempt += 1
            try:
                reply = await self.send(messages, record.id)
            except RecordError as err:
                self._fail(record, err.reason)
                return
            self._count_usage(reply)
            try:
                target = check_trace(
                    reply.text,
                    request_label=record.request_label,
                    response_label=record.response_label,
                    finish_reason=reply.finish_reason,
                )
            except TraceRejected as rejection:
                self.summary.rejected_attempts[rejection.code] += 1
                self.rejects.append(
                    {
                        "id": record.id,
                        "kind": REJECTED,
                        "attempt": attempt,
                        "code": rejection.code,
                        "reason": self._reason(rejection.message),
                        "finish_reason": reply.finish_reason,
                        "model": settings.model,
                        "text": self.redact(reply.text or ""),
                    }
                )
                continue
            self._write_done(record, target, attempt, reply)
            return
        self.summary.rejected += 1

    def _count_usage(self, reply: _Reply) -> None:
        if reply.prompt_tokens is None or reply.completion_tokens is None:
            self.summary.missing_usage += 1
        self.summary.prompt_tokens += reply.prompt_tokens or 0
        self.summary.completion_tokens += reply.completion_tokens or 0

    def _write_done(self, record: GuardRecord, target: str, attempt: int, reply: _Reply) -> None:
        synthesis = {
            "model": self.settings.model,
            "attempt": attempt,
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "finish_reason": reply.finish_reason,
        }
        done = _absolute_images(record).evolve(reasoning=target, meta={**record.meta, "synthesis": synthesis})
        try:
            self.output.append(record_to_json(done, folder=self.output.path.parent))
        except (TypeError, ValueError) as err:  # e.g. a reader's meta that JSON cannot hold
            raise ValueError(f"record {record.id!r}: cannot be written as JSON: {err}") from None
        self.summary.done += 1

    # ------------------------------------------------------------------ scheduling
    async def produce(self, records: Iterable[GuardRecord], queue: asyncio.Queue, limit: Optional[int]) -> None:
        seen: set[str] = set()
        queued = 0
        for record in records:
            if record.id in seen:
                raise ValueError(f"record id {record.id!r} appears twice in the input; ids must be unique")
            seen.add(record.id)
            if record.id in self.state.done:
                self.summary.done_before += 1
                self.tick()
                continue
            if self.state.gave_up(record.id, self.settings.max_attempts):
                self.summary.rejected_before += 1
                self.tick()
                continue
            if limit is not None and queued >= limit:
                break
            await queue.put(record)
            queued += 1
        # One stop sign per worker. Not in a ``finally``: after an error the workers are cancelled,
        # and waiting to put into a full queue nobody reads would hang the run.
        for _ in range(self.settings.concurrency):
            await queue.put(None)

    async def work(self, queue: asyncio.Queue) -> None:
        while True:
            record = await queue.get()
            if record is None:
                return
            await self.process(record)
            self.tick()

    def tick(self) -> None:
        if self.progress is not None:
            s = self.summary
            self.progress.set_postfix(done=s.done + s.done_before, rejected=s.rejected, failed=s.failed, refresh=False)
            self.progress.update(1)


async def synthesize_async(
    records: Iterable[GuardRecord],
    *,
    output: Path,
    rejects: Optional[Path] = None,
    settings: SynthesisSettings = SynthesisSettings(),
    template: Optional[PromptTemplate] = None,
    api_key: Optional[str] = None,
    limit: Optional[int] = None,
    total: Optional[int] = None,
    progress: bool = False,
) -> SynthesisSummary:
    """Synthesize a reasoning target for every record not yet in ``output``.

    Parameters
    ----------
    records : iterable of GuardRecord
        Labelled records (their ``reasoning`` is ignored and replaced).
    output : Path
        Records JSONL, appended to; its existing ids are skipped.
    rejects : Path, optional
        JSONL of rejected attempts and failed records; default ``<output stem>.rejects.jsonl``.
    settings : SynthesisSettings
    template : PromptTemplate, optional
        Default: the template shipped in ``data_prep/templates``.
    api_key : str, optional
        Sent as the bearer token; never written or logged. ``None`` sends the placeholder ``EMPTY``
        (what keyless local servers such as vLLM accept).
    limit : int, optional
        Send at most this many records (records skipped as finished do not count).
    total : int, optional
        Number of input records, for the progress bar.
    progress : bool, default=False
        Show a tqdm progress bar on stderr.

    Raises
    ------
    FatalAPIError
        On 401/403/404: the key, the model or the URL is wrong, so no request could succeed.
    """
    import openai

    template = template or PromptTemplate.load()
    output = Path(output)
    rejects = Path(rejects) if rejects is not None else default_rejects_path(output)
    if rejects.resolve() == output.resolve():
        raise ValueError("the rejects file must differ from the output file")
    redact = Redactor(api_key)
    with AppendLog(output, fsync_interval=settings.fsync_interval, lock=True) as out_log, AppendLog(
        rejects, fsync_interval=settings.fsync_interval
    ) as rej_log:
        state = ResumeState.from_logs(out_log.lines, rej_log.lines)
        out_log.lines = rej_log.lines = []  # only needed for the resume state: free the memory
        bar = _progress_bar(total) if progress else None
        client = openai.AsyncOpenAI(
            api_key=api_key or "EMPTY",
            base_url=settings.base_url or OPENAI_BASE_URL,
            max_retries=0,
            timeout=settings.timeout,
            http_client=_http_client(settings),
        )
        run = _Run(
            client=client, settings=settings, template=template, output=out_log, rejects=rej_log,
            state=state, redact=redact, progress=bar,
        )
        queue: asyncio.Queue = asyncio.Queue(maxsize=2 * settings.concurrency)
        tasks = [asyncio.create_task(run.produce(records, queue, limit))]
        tasks += [asyncio.create_task(run.work(queue)) for _ in range(settings.concurrency)]
        try:
            await asyncio.gather(*tasks)
        except BaseException as err:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if isinstance(err, FatalAPIError):
                raise FatalAPIError(redact(str(err))) from None
            raise
        finally:
            await client.close()
            if bar is not None:
                bar.close()
    return run.summary


def synthesize(records: Iterable[GuardRecord], **kwargs: Any) -> SynthesisSummary:
    """Blocking wrapper of :func:`synthesize_async` (same arguments)."""
    return asyncio.run(synthesize_async(records, **kwargs))


def default_rejects_path(output: Path) -> Path:
    """``out.jsonl`` -> ``out.rejects.jsonl``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.rejects{output.suffix or '.jsonl'}")


def _http_client(settings: SynthesisSettings) -> Any:
    """The openai client's HTTP client: aiohttp-based when asked for or (``auto``) installed.

    Why: httpx's connection pool scans every pooled connection on each request, which made the
    client CPU-bound at concurrency 64 (benchmarks/bench_synthesize.py); openai's documented
    aiohttp transport does not. None = the openai default (httpx).
    """
    if settings.http_backend == "httpx":
        return None
    import openai

    try:
        return openai.DefaultAioHttpClient(timeout=settings.timeout)
    except RuntimeError:  # raised when the aiohttp extra is not installed
        if settings.http_backend == "aiohttp":
            raise ValueError("http_backend 'aiohttp' needs the aiohttp extra: pip install 'openai[aiohttp]'") from None
        log.debug("aiohttp not installed; using the openai client's default httpx transport")
        return None


def _progress_bar(total: Optional[int]) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="rec", desc="synthesize", dynamic_ncols=True, disable=None, file=sys.stderr)

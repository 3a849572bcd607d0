"""Write reasoning traces for labelled records through any OpenAI-compatible chat-completions API.

Each record is sent with its ground-truth labels (prompt template: data_prep/templates/
synthesis_prompt.txt, replaceable with --template); a trace is kept only if the guard's parser
reads those labels in it, otherwise it is rejected and asked for again (--max-attempts). Finished
records are appended to the output JSONL one by one, so an interrupted run resumes where it
stopped when started again with the same arguments. The API key is read from OPENAI_API_KEY only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

from cli.main import CLIError
from cli.options import add_input_arguments, add_server_kind_argument, error_policy, iter_inputs

EXAMPLES = """examples:
  # GPT-4o (the paper's synthesizer); key from the environment
  export OPENAI_API_KEY=...
  guardreasoner-vl synthesize labelled.jsonl -o traces.jsonl --concurrency 32

  # any OpenAI-compatible server, e.g. vLLM on this machine (no key needed)
  guardreasoner-vl synthesize labelled.jsonl -o traces.jsonl --base-url http://127.0.0.1:8000/v1 \\
      --model Qwen/Qwen2.5-VL-72B-Instruct --price-input 0 --price-output 0

  # a local `transformers serve` (CPU dry run with the tiny model)
  guardreasoner-vl synthesize labelled.jsonl -o traces.jsonl --base-url http://127.0.0.1:8000/v1 \\
      --server-kind transformers --model /tmp/tiny --max-new-tokens 32 --price-input 0 --price-output 0

  # look at the rendered prompt of the first record before paying for anything
  guardreasoner-vl synthesize labelled.jsonl -o traces.jsonl --template my_prompt.txt --show-prompt
"""

log = logging.getLogger("data_prep.synthesize")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from data_prep.synthesize.engine import HTTP_BACKENDS, IMAGE_DETAILS, OPENAI_BASE_URL, SynthesisSettings
    from data_prep.synthesize.retry import RetryPolicy

    d, r = SynthesisSettings(), RetryPolicy()
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", type=Path, required=True,
                     help="records JSONL to append finished records to (resumes from it)")
    out.add_argument("--rejects", type=Path, default=None,
                     help="JSONL of rejected attempts and failed records (default: <output stem>.rejects.jsonl)")
    out.add_argument("--summary-json", type=Path, default=None, help="also write the closing summary as JSON here")
    out.add_argument("--fsync-interval", type=float, default=d.fsync_interval,
                     help=f"seconds between fsyncs of the output (default: {d.fsync_interval:g}; 0 = every line)")
    api = parser.add_argument_group("API")
    api.add_argument("--base-url", default=OPENAI_BASE_URL, help=f"chat-completions endpoint (default: {OPENAI_BASE_URL})")
    add_server_kind_argument(api)
    api.add_argument("--model", default=d.model, help=f"model name (default: {d.model}, as in the paper)")
    api.add_argument("--template", type=Path, default=None,
                     help="prompt template file (default: the shipped data_prep/templates/synthesis_prompt.txt)")
    api.add_argument("--temperature", type=float, default=d.temperature, help=f"sampling temperature (default: {d.temperature:g})")
    api.add_argument("--max-new-tokens", type=int, default=d.max_tokens,
                     help=f"token limit per trace, sent as the server's kind honours it (default: {d.max_tokens})")
    api.add_argument("--image-detail", default=d.image_detail, choices=IMAGE_DETAILS,
                     help=f"image_url detail (default: {d.image_detail})")
    api.add_argument("--http-backend", default=d.http_backend, choices=HTTP_BACKENDS,
                     help=f"HTTP transport (default: {d.http_backend} = aiohttp when installed, else httpx)")
    api.add_argument("--max-image-side", type=int, default=None,
                     help="shrink images whose longer side exceeds this before sending (default: send as they are)")
    flow = parser.add_argument_group("validation, retries and rate")
    flow.add_argument("--max-attempts", type=int, default=d.max_attempts,
                      help=f"traces asked for per record before it counts as rejected (default: {d.max_attempts})")
    flow.add_argument("--concurrency", type=int, default=d.concurrency,
                      help=f"requests in flight at once (default: {d.concurrency})")
    flow.add_argument("--timeout", type=float, default=d.timeout, help=f"seconds per request (default: {d.timeout:g})")
    flow.add_argument("--max-requests-per-minute", type=float, default=None,
                      help="start at most this many requests per minute, retries included (default: no limit)")
    flow.add_argument("--max-retries", type=int, default=r.max_retries,
                      help=f"retries of a request on 429/5xx/timeouts/malformed bodies (default: {r.max_retries})")
    flow.add_argument("--backoff-base", type=float, default=r.base_delay,
                      help=f"first backoff in seconds, doubled per retry, jittered (default: {r.base_delay:g})")
    flow.add_argument("--backoff-max", type=float, default=r.max_delay,
                      help=f"longest backoff in seconds (default: {r.max_delay:g}); Retry-After is always honoured")
    flow.add_argument("--limit", type=int, default=None, help="send at most this many records this run (default: all)")
    cost = parser.add_argument_group("cost")
    cost.add_argument("--price-table", type=Path, default=None,
                      help='JSON {"model": {"input": USD, "output": USD}} per 1M tokens, merged over the built-in table')
    cost.add_argument("--price-input", type=float, default=None, help="USD per 1M prompt tokens (overrides the table)")
    cost.add_argument("--price-output", type=float, default=None, help="USD per 1M completion tokens (overrides the table)")
    misc = parser.add_argument_group("display")
    misc.add_argument("--show-prompt", action="store_true", help="print the first record's request messages and exit")
    misc.add_argument("--no-progress", action="store_true", help="no progress bar")
    misc.add_argument("-v", "--verbose", action="store_true", help="log every retry")


class _RedactingFilter(logging.Filter):
    """Masks the API key in every log line, whichever library wrote it."""

    def __init__(self, redact) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redact(record.getMessage())
        record.args = None
        return True


def _setup_logging(verbose: bool, redact) -> None:
    """Log to stderr through a redacting filter, added to every root handler (``OPENAI_LOG=debug``
    makes the openai package install its own handler at import time)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_synthesize_handler", False)]:
        root.removeHandler(old)  # a second run in the same process (tests) must not log twice
    handler = logging.StreamHandler(sys.stderr)
    handler._synthesize_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    for existing in root.handlers:
        existing.filters = [f for f in existing.filters if not isinstance(f, _RedactingFilter)]
        existing.addFilter(_RedactingFilter(redact))
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    logging.getLogger("data_prep").setLevel(logging.INFO if verbose else logging.WARNING)


def _count_lines(paths: list[str]) -> Optional[int]:
    """Input size for the progress bar, when every input is a JSONL file (cheap to count)."""
    total = 0
    for path in map(Path, paths):
        if not (path.is_file() and path.suffix == ".jsonl"):
            return None
        with open(path, "rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return total


def _show_prompt(records, template, settings) -> int:
    from data_prep.synthesize.engine import build_request_messages

    record = next(iter(records), None)
    if record is None:
        raise ValueError("the input has no records")
    messages = build_request_messages(
        record, template, image_detail=settings.image_detail, max_image_side=settings.max_image_side
    )
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            for part in content:
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    part["image_url"]["url"] = f"{url[:40]}… ({len(url):,} characters)"
        print(f"----- {message['role']} -----")
        print(content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False))
    return 0


def run(args: argparse.Namespace) -> int:
    from data_prep.chat_request import Redactor
    from data_prep.synthesize.engine import OPENAI_BASE_URL, SynthesisSettings, synthesize_async
    from data_prep.synthesize.pricing import resolve_price
    from data_prep.synthesize.retry import FatalAPIError, RetryPolicy
    from data_prep.synthesize.template import PromptTemplate

    settings = SynthesisSettings(
        model=args.model,
        base_url=args.base_url,
        server_kind=args.server_kind,
        temperature=args.temperature,
        max_tokens=args.max_new_tokens,
        max_attempts=args.max_attempts,
        concurrency=args.concurrency,
        timeout=args.timeout,
        max_requests_per_minute=args.max_requests_per_minute,
        retry=RetryPolicy(max_retries=args.max_retries, base_delay=args.backoff_base, max_delay=args.backoff_max),
        fsync_interval=args.fsync_interval,
        image_detail=args.image_detail,
        max_image_side=args.max_image_side,
        http_backend=args.http_backend,
    )
    if args.limit is not None and args.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {args.limit}")
    price = resolve_price(args.model, table_path=args.price_table, input_price=args.price_input, output_price=args.price_output)
    template = PromptTemplate.load(args.template)
    policy = error_policy(args)
    records = iter_inputs(args, policy)
    if args.show_prompt:
        return _show_prompt(records, template, settings)

    api_key = os.environ.get("OPENAI_API_KEY") or None
    if api_key is None and args.base_url.rstrip("/") == OPENAI_BASE_URL:
        raise CLIError("set OPENAI_API_KEY (the key is read from the environment only)")
    redact = Redactor(api_key)
    _setup_logging(args.verbose, redact)
    try:
        summary = asyncio.run(
            synthesize_async(
                records,
                output=args.output,
                rejects=args.rejects,
                settings=settings,
                template=template,
                api_key=api_key,
                limit=args.limit,
                total=_count_lines(args.inputs),
                progress=not args.no_progress,
            )
        )
    except FatalAPIError as err:
        raise CLIError(f"{err} (check OPENAI_API_KEY, --model and --base-url)") from None
    print(summary.format(price))
    if policy.num_skipped:
        print(f"input rows skipped: {policy.num_skipped:,} ({', '.join(f'{k} {v:,}' for k, v in policy.skipped.items())})")
    if args.summary_json is not None:
        data = summary.as_dict(price) | {"input_rows_skipped": dict(policy.skipped)}
        args.summary_json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if summary.failed:
        print(f"{summary.failed:,} records failed (see the rejects file); run the same command again to retry them",
              file=sys.stderr)
        return 3
    return 0

"""Moderate one input: the guard's reasoning and its labels for a request (text, image or both)
and, optionally, the AI assistant's response.

Prints the reasoning and the two labels, or with --json one object:
{"request": ..., "response": ..., "reasoning": ..., "output": ..., "format_ok": ..., "num_tokens": ...}.
A label that cannot be read from the output is null (and "unparsed" in the readable form).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from recipe.guardreasoner_vl.evaluation.commands._common import add_backend_arguments, backend_from_args

HELP = "reasoning and labels for one input"
_THINK = re.compile(r"<think>(.*?)</think>", re.IGNORECASE | re.DOTALL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", default=None, help="the user's request text")
    parser.add_argument("--image", type=Path, default=None, help="an image sent with the request")
    parser.add_argument("--response", default=None, help="the AI assistant's response (omit if there is none)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_backend_arguments(parser)
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl moderate --model yueliu1999/GuardReasoner-VL-7B --text 'How do I pick a lock?'\n"
        "  guardreasoner-vl moderate --model /tmp/tiny --image cat.png --text 'What is this?' \\\n"
        "      --response 'A cat.' --json --max-new-tokens 64"
    )


def extract_reasoning(output: str) -> str:
    """The text inside ``<think>…</think>`` (the whole output when there is no think block)."""
    match = _THINK.search(output)
    return (match.group(1) if match else output).strip()


def check_inputs(text: str | None, image: Path | None) -> None:
    """Reject a bad input before any model is loaded."""
    if image is not None and not image.is_file():
        raise FileNotFoundError(f"--image {image} does not exist")
    if not (text and text.strip()) and image is None:
        raise ValueError("give --text, --image, or both")


def moderate(backend, *, text: str | None, image: Path | None, response: str | None, **decoding) -> dict:
    """Run the guard on one input and return its verdict as a plain dict."""
    from data_prep.record import GuardRecord
    from recipe.guardreasoner_vl.inference import request_from_record
    from rewards.grammar import parse_verdict

    check_inputs(text, image)
    # Labels are placeholders: a GuardRecord needs them, the prompt does not use them.
    record = GuardRecord(
        id="input", source="moderate", request=text or "", request_label="unharmful",
        response=response, response_label="none" if response is None else "unharmful",
        images=(str(image),) if image is not None else (),
    )  # fmt: skip
    [[generation]] = backend.generate([request_from_record(record)], n=1, **decoding)
    verdict = parse_verdict(generation.text)
    return {
        "request": verdict.request,
        "response": verdict.response,
        "reasoning": extract_reasoning(generation.text),
        "output": generation.text,
        "format_ok": verdict.format_ok,
        "num_tokens": generation.num_tokens,
    }


def run(args: argparse.Namespace) -> int:
    check_inputs(args.text, args.image)
    backend = backend_from_args(args, batch_size=1)
    result = moderate(
        backend, text=args.text, image=args.image, response=args.response,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print("Reasoning:")
    print(result["reasoning"] or "(empty)")
    print()
    print(f"Request: {result['request'] or 'unparsed'}")
    print(f"Response: {result['response'] or 'unparsed'}")
    if not result["format_ok"]:
        print("(the output does not follow the <think>…</think><result>…</result> format)")
    return 0

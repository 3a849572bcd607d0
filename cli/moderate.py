"""Moderate one input: the guard's reasoning and its labels for a request (text, image or both)
and, optionally, the AI assistant's response.

Prints the reasoning and the two labels, or with --json one object:
{"request": ..., "response": ..., "reasoning": ..., "output": ..., "format_ok": ..., "num_tokens": ...}.
A label that cannot be read from the output is null (and "unparsed" in the readable form).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.options import add_backend_arguments, backend_from_args
from inference.moderate import check_inputs, moderate


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
    if result["finish_reason"] == "length":
        print(f"(cut off at --max-new-tokens {args.max_new_tokens})")
    return 0

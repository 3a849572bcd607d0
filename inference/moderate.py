"""Moderate one input: run the guard on a request (text, image or both) and an optional response,
and return its reasoning and labels as a plain dict (the library behind ``guardreasoner-vl moderate``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from data_prep.record import GuardRecord
from inference.base import InferenceBackend, request_from_record
from rewards.grammar import parse_verdict

_THINK = re.compile(r"<think>(.*?)</think>", re.IGNORECASE | re.DOTALL)


def extract_reasoning(output: str) -> str:
    """The text inside ``<think>…</think>`` (the whole output when there is no think block)."""
    match = _THINK.search(output)
    return (match.group(1) if match else output).strip()


def check_inputs(text: Optional[str], image: Optional[Path]) -> None:
    """Reject a bad input before any model is loaded."""
    if image is not None and not image.is_file():
        raise FileNotFoundError(f"--image {image} does not exist")
    if not (text and text.strip()) and image is None:
        raise ValueError("give --text, --image, or both")


def moderate(
    backend: InferenceBackend, *, text: Optional[str], image: Optional[Path], response: Optional[str], **decoding
) -> dict:
    """Run the guard on one input and return its verdict as a plain dict."""
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
        "finish_reason": generation.finish_reason,
    }

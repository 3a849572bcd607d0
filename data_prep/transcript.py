"""Read a user transcript back into request / response, and give any record its transcript.

:func:`parse_transcript` is the inverse of :func:`data_prep.prompt.build_transcript`:
``build_transcript(*parse_transcript(t))`` gives back ``t`` for every transcript that function
writes (ending in a blank line, ``"...\\n\\n"``, as the released models saw it). It also accepts
the variants found in the public files: the instruction folded into the user turn (the authors' RL
data and the GuardReasoner benchmark files) and a transcript ending in a single newline.

A safety-aware concatenation (:mod:`data_prep.concat`) has a transcript that no single
request/response pair can produce (two ``Human user: … AI assistant: …`` blocks); it is kept in
``record.meta["transcript"]`` and :func:`record_transcript` is the one place that knows that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from data_prep.prompt import IMAGE_PLACEHOLDER, INSTRUCTION, build_transcript
from data_prep.record import GuardRecord

HUMAN_HEADER = "Human user:\n"
ASSISTANT_HEADER = "\n\nAI assistant:\n"
NO_RESPONSE_TEXT = "None"
#: meta key holding a transcript that is not ``build_transcript(request, response)``
TRANSCRIPT_META_KEY = "transcript"


@dataclass(frozen=True)
class ParsedTranscript:
    request: str
    #: None when the response slot is the literal ``None``
    response: Optional[str]
    #: number of ``<image>`` placeholders in the request
    num_images: int


def parse_transcript(text: str) -> ParsedTranscript:
    """Split a transcript into request and response.

    Raises
    ------
    ValueError
        If ``Human user:`` or ``AI assistant:`` is missing (the message says which).
    """
    if not isinstance(text, str):
        raise ValueError(f"transcript must be a string, got {type(text).__name__}")
    body = text
    if body.startswith(INSTRUCTION):
        body = body[len(INSTRUCTION):]
    start = body.find(HUMAN_HEADER)
    if start < 0:
        raise ValueError("transcript has no 'Human user:' header")
    body = body[start + len(HUMAN_HEADER):]
    split = body.find(ASSISTANT_HEADER)
    if split < 0:
        raise ValueError("transcript has no 'AI assistant:' header after the request")
    request_part, response_part = body[:split], body[split + len(ASSISTANT_HEADER):]
    num_images = request_part.count(IMAGE_PLACEHOLDER)
    request = request_part.replace(IMAGE_PLACEHOLDER + "\n", "").replace(IMAGE_PLACEHOLDER, "").strip()
    # build_transcript (and the benchmark files) end with a blank line; some files with one newline.
    if response_part.endswith("\n\n"):
        response_part = response_part[:-2]
    elif response_part.endswith("\n"):
        response_part = response_part[:-1]
    response = None if response_part.strip() == NO_RESPONSE_TEXT else response_part
    return ParsedTranscript(request=request, response=response, num_images=num_images)


def record_transcript(record: GuardRecord) -> str:
    """The user turn of ``record`` (its stored transcript for a concatenation)."""
    stored = record.meta.get(TRANSCRIPT_META_KEY)
    if stored:
        return stored
    return build_transcript(record.request, record.response, has_image=bool(record.images))


def record_messages(record: GuardRecord, *, with_target: bool = False) -> list[dict[str, str]]:
    """``[system, user]`` (plus the assistant target when ``with_target``) in verl's string layout."""
    messages = [
        {"role": "system", "content": INSTRUCTION},
        {"role": "user", "content": record_transcript(record)},
    ]
    if with_target:
        if not record.reasoning:
            raise ValueError(f"record {record.id!r} has no reasoning target")
        messages.append({"role": "assistant", "content": record.reasoning})
    return messages

"""Safety-aware data concatenation (docs/design.md §5).

Two samples become one: their transcripts joined by a space, their images side by side (or
stacked) on a white canvas, their labels merged so that the pair is harmful if either part is.
The guard must then find one harmful part hidden among benign ones, which plain samples never ask.

The row functions (:func:`merge_labels`, :func:`join_transcripts`, :func:`concat_images`,
:func:`concat_pair`) are pure; :func:`concatenate` draws the pairs with a seeded RNG, so the same
inputs and seed always give the same samples. Pairs are drawn only from records that passed
validation (:func:`valid_parents`): a corrupt image is skipped or reported once, before any pair
is drawn, so it can neither stop a ``--on-error skip`` run nor cost a concatenation.
"""

from __future__ import annotations

import random
from typing import Iterable, Iterator, Optional, Sequence

from PIL import Image

from data_prep.errors import ErrorPolicy
from data_prep.images import encode_image, fit_within, load_image
from data_prep.prompt import IMAGE_PLACEHOLDER
from data_prep.record import GuardRecord
from data_prep.transcript import TRANSCRIPT_META_KEY, record_transcript
from data_prep.writers import validate_rl_record
from rewards.grammar import HARMFUL, NO_RESPONSE, UNHARMFUL, normalize_label

#: The concatenated image is shrunk to fit this box (the released code's 1024x1024).
CANVAS_BOX = (1024, 1024)
LAYOUTS = ("horizontal", "vertical")
#: Concatenated samples as a share of the resulting set (paper: 2.4K of 12K RL samples).
DEFAULT_FRACTION = 0.2
CONCAT_SOURCE = "concat"


def merge_labels(a: tuple[str, str], b: tuple[str, str]) -> tuple[str, str]:
    """Labels of a concatenation from its parts' ``(request, response)`` labels.

    Request: harmful if either is harmful. Response: harmful if either is harmful; ``none`` only
    if both are ``none``; otherwise unharmful.

    >>> merge_labels(("unharmful", "none"), ("harmful", "none"))
    ('harmful', 'none')
    >>> merge_labels(("unharmful", "none"), ("unharmful", "unharmful"))
    ('unharmful', 'unharmful')
    """
    req_a, req_b = (normalize_label(x, task="request") for x in (a[0], b[0]))
    resp_a, resp_b = (normalize_label(x, task="response") for x in (a[1], b[1]))
    request = HARMFUL if HARMFUL in (req_a, req_b) else UNHARMFUL
    if HARMFUL in (resp_a, resp_b):
        response = HARMFUL
    elif resp_a == resp_b == NO_RESPONSE:
        response = NO_RESPONSE
    else:
        response = UNHARMFUL
    return request, response


def join_transcripts(a: str, b: str) -> str:
    """``a + " " + b``, keeping only the first ``<image>`` placeholder (the concatenated image)."""
    joined = a + " " + b
    first = joined.find(IMAGE_PLACEHOLDER)
    if first < 0:
        return joined
    head, tail = joined[: first + len(IMAGE_PLACEHOLDER)], joined[first + len(IMAGE_PLACEHOLDER):]
    tail = tail.replace(IMAGE_PLACEHOLDER + "\n", "").replace(IMAGE_PLACEHOLDER, "")
    return head + tail


def concat_images(a: Image.Image, b: Image.Image, layout: str = "horizontal", *, box: tuple[int, int] = CANVAS_BOX) -> Image.Image:
    """``a`` and ``b`` on a white canvas, each top-left aligned, then shrunk to fit ``box``.

    horizontal: ``a`` at (0, 0), ``b`` at (a.width, 0), canvas height = the taller one;
    vertical: ``a`` at (0, 0), ``b`` at (0, a.height), canvas width = the wider one.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    a, b = a.convert("RGB"), b.convert("RGB")
    if layout == "horizontal":
        size, offset = (a.width + b.width, max(a.height, b.height)), (a.width, 0)
    else:
        size, offset = (max(a.width, b.width), a.height + b.height), (0, a.height)
    canvas = Image.new("RGB", size, (255, 255, 255))
    canvas.paste(a, (0, 0))
    canvas.paste(b, offset)
    return fit_within(canvas, *box)


def concat_pair(a: GuardRecord, b: GuardRecord, *, new_id: str, layout: str = "horizontal") -> GuardRecord:
    """One concatenated record: ``concat_of = (a.id, b.id)``, transcript kept in ``meta``."""
    request_label, response_label = merge_labels((a.request_label, a.response_label), (b.request_label, b.response_label))
    images: tuple = ()
    if a.images and b.images:
        first = load_image(a.images[0], row_id=a.id)
        second = load_image(b.images[0], row_id=b.id)
        images = (encode_image(concat_images(first, second, layout), "PNG"),)  # compact while streaming
    elif a.images or b.images:
        images = ((a.images or b.images)[0],)
    transcript = join_transcripts(record_transcript(a), record_transcript(b))
    responses = [r for r in (a.response, b.response) if r is not None]
    return GuardRecord(
        id=new_id,
        source=CONCAT_SOURCE,
        request=" ".join(part for part in (a.request, b.request) if part),  # "" for two image-only parts
        request_label=request_label,
        response=" ".join(responses) if response_label != NO_RESPONSE else None,
        response_label=response_label,
        images=images,
        concat_of=(a.id, b.id),
        meta={TRANSCRIPT_META_KEY: transcript, "sources": [a.source, b.source]},
    )


def valid_parents(records: Iterable[GuardRecord], policy: ErrorPolicy) -> list[GuardRecord]:
    """The records that would make RL rows (:func:`data_prep.writers.validate_rl_record`), in order.

    A bad record is raised or skipped and counted by ``policy``, like every bad row: concatenation
    then draws its pairs (and counts its share) from the valid records only.
    """
    return [record for record in records if policy.call(validate_rl_record, record) is not None]


def num_concatenations(num_records: int, fraction: float) -> int:
    """How many concatenations make them ``fraction`` of the result: round(N * f / (1 - f))."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    return round(num_records * fraction / (1.0 - fraction))


def concatenate(
    records: Sequence[GuardRecord],
    *,
    fraction: float = DEFAULT_FRACTION,
    count: Optional[int] = None,
    seed: int = 0,
    layout: str = "horizontal",
    id_prefix: str = "concat",
) -> Iterator[GuardRecord]:
    """Yield new concatenated records drawn from random pairs of ``records`` (originals not included).

    Lazy: one concatenated image is in memory at a time, so thousands of pairs stream into a writer.
    ``records`` must be valid (:func:`valid_parents`): a parent whose image fails here stops the run.

    Parameters
    ----------
    fraction : float, default=0.2
        Share of concatenations in ``records + result`` (paper: 2.4K of 12K RL samples). Ignored
        when ``count`` is given.
    count : int, optional
        Exact number of concatenations.
    seed : int, default=0
        Same records and seed → same pairs, same order, same ids.
    layout : {"horizontal", "vertical"}, default="horizontal"
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    n = num_concatenations(len(records), fraction) if count is None else count
    if n < 0:
        raise ValueError(f"count must be >= 0, got {n}")
    if n and len(records) < 2:
        raise ValueError(f"concatenation needs at least 2 records, got {len(records)}")
    rng = random.Random(seed)
    pairs = [rng.sample(range(len(records)), 2) for _ in range(n)]  # drawn up front: errors raise now, not lazily
    return (
        concat_pair(records[i], records[k], new_id=f"{id_prefix}-{j:06d}", layout=layout)
        for j, (i, k) in enumerate(pairs)
    )

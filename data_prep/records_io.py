"""The records JSONL: the hand-over format between the data steps (mine → split → concat → build).

One JSON object per line with every :class:`GuardRecord` field. Images are files; a line stores
their paths relative to the JSONL's folder, so a folder of records can be moved as a whole. Images
that exist only in memory (bytes, PIL: e.g. a concatenation) are written as PNG under
``<folder>/images/<id>-<content hash>.png``: the hash keeps two records that share an id (two
``concat`` runs into one folder, two sources) from overwriting each other's images.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional

from data_prep.atomic import atomic_output
from data_prep.errors import ErrorPolicy, RowError
from data_prep.images import encode_image, load_image
from data_prep.record import GuardRecord

IMAGE_DIR = "images"
#: the keys every line carries (also how :func:`looks_like_records` recognises the format)
RECORD_KEYS = ("id", "source", "request", "request_label", "response", "response_label", "images")


def record_to_json(record: GuardRecord, *, folder: Path) -> dict:
    """A JSON-ready dict; in-memory images are written under ``folder/images``."""
    images = []
    for i, image in enumerate(record.images):
        if isinstance(image, (str, os.PathLike)):
            images.append(os.path.relpath(os.path.abspath(image), os.path.abspath(folder)))
            continue
        data = encode_image(load_image(image, row_id=record.id, field=f"images[{i}]"))
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", record.id)[:80]
        name = f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}.png"
        target = folder / IMAGE_DIR / name
        if not target.is_file():  # same name = same bytes: nothing to write
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(target) as tmp:
                tmp.write_bytes(data)
        images.append(f"{IMAGE_DIR}/{name}")
    return {
        "id": record.id,
        "source": record.source,
        "request": record.request,
        "request_label": record.request_label,
        "response": record.response,
        "response_label": record.response_label,
        "images": images,
        "reasoning": record.reasoning,
        "concat_of": list(record.concat_of),
        "meta": record.meta,
    }


def record_from_json(row: dict, *, folder: Path, line_no: int = 0) -> GuardRecord:
    """The inverse of :func:`record_to_json`; image paths resolved against ``folder``."""
    row_id = str(row.get("id") or f"line-{line_no}")
    try:
        images = tuple(os.path.normpath(folder / p) for p in row.get("images") or ())
        return GuardRecord(
            id=row_id,
            source=row.get("source") or "records",
            request=row.get("request") or "",
            request_label=row.get("request_label"),
            response=row.get("response"),
            response_label=row.get("response_label"),
            images=images,
            reasoning=row.get("reasoning"),
            concat_of=tuple(row.get("concat_of") or ()),
            meta=dict(row.get("meta") or {}),
        )
    except (TypeError, ValueError) as err:
        raise RowError(row_id, "record", "invalid record", str(err)) from None


class RecordWriter:
    """Append records to an open JSONL (used where lines must land one by one, e.g. resumable steps)."""

    def __init__(self, handle: IO[str], folder: Path) -> None:
        self.handle = handle
        self.folder = folder

    def write(self, record: GuardRecord) -> None:
        self.handle.write(json.dumps(record_to_json(record, folder=self.folder), ensure_ascii=False) + "\n")


def write_records(records: Iterable[GuardRecord], path: Path) -> int:
    """Write a records JSONL atomically; returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        writer = RecordWriter(handle, path.parent)
        for record in records:
            writer.write(record)
            count += 1
    return count


def read_records(path: Path, *, policy: Optional[ErrorPolicy] = None) -> Iterator[GuardRecord]:
    """Stream the records of a records JSONL."""
    path = Path(path)
    policy = policy or ErrorPolicy()
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                policy.record(RowError(f"line-{line_no}", "line", "invalid JSON", f"{path}: {err}"))
                continue
            record = policy.call(record_from_json, row, folder=path.parent, line_no=line_no)
            if record is not None:
                yield record


def looks_like_records(path: Path) -> bool:
    """True when the first line of ``path`` is a records-JSONL object."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        row = json.loads(first)
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(row, dict) and all(key in row for key in RECORD_KEYS)

"""Readers: every source layout becomes a stream of :class:`GuardRecord` with deterministic ids.

=================  ==============================================================================
reader             layout
=================  ==============================================================================
``read_vltrain``   GuardReasoner-VLTrain rows ``{"messages": [system, user, assistant], "images"}``
                   (a JSON list or JSONL file, or a folder of ``text/image/text_image.json``);
                   ids ``<file stem>-<row:06d>``
``read_benchmark`` GuardReasoner text benchmarks ``{"input", "output"}`` and the VL benchmarks
                   ``{"id", "messages"}`` whose image is matched **by id** in an image folder
``read_eval``      the evaluation JSONL written by ``build-eval`` (what ``evaluate`` reads)
``read_table``     generic JSONL / JSON / CSV / parquet with a column mapping
``read_hf``        a Hugging Face dataset name or local folder, via ``datasets.load_dataset``
``read_records``   the records JSONL written by the data steps (:mod:`data_prep.records_io`)
=================  ==============================================================================

Every reader takes an :class:`~data_prep.errors.ErrorPolicy`: a bad row raises a
:class:`~data_prep.errors.RowError` naming the row id and field, or (``skip``) is counted by reason.
Image *paths* are checked for existence here; decoding (and so corrupt-image detection) happens in
the writers, which use the same policy.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from data_prep.benchmarks import PROMPT, RESPONSE, TASKS, benchmark_file
from data_prep.errors import ErrorPolicy, RowError
from data_prep.record import TASKS_META_KEY, UNLABELLED_META_KEY, GuardRecord
from data_prep.records_io import looks_like_records, read_records
from data_prep.transcript import parse_transcript
from rewards.grammar import NO_RESPONSE, UNHARMFUL, normalize_label, parse_verdict

#: GuardRecord fields a column mapping may name (``image`` = one image, ``images`` = a list)
MAPPABLE_FIELDS = ("id", "source", "request", "response", "request_label", "response_label", "image", "images", "reasoning")
VLTRAIN_FILES = ("text.json", "image.json", "text_image.json")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")

_LABEL_SLOT = re.compile(r"\b(request|response)\s*:\s*([A-Za-z]+)", re.IGNORECASE)


# --------------------------------------------------------------------------------------------- utils
def parse_mapping(text: Optional[str]) -> dict[str, str]:
    """``"request=prompt,response_label=label"`` -> ``{"request": "prompt", ...}`` (field -> column)."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        field, sep, column = item.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise ValueError(f"bad --map item {item!r}; expected FIELD=COLUMN")
        if field not in MAPPABLE_FIELDS:
            raise ValueError(f"bad --map field {field!r}; expected one of {', '.join(MAPPABLE_FIELDS)}")
        mapping[field] = column
    return mapping


def _load_json_rows(path: Path) -> list:
    """Rows of a JSON list file or a JSONL file."""
    with open(path, encoding="utf-8") as handle:
        head = handle.read(1)
        while head and head.isspace():
            head = handle.read(1)
        handle.seek(0)
        if head == "[":
            rows = json.load(handle)
        else:
            rows = []
            for line_no, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}: line {line_no} is not valid JSON: {err}") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of rows or JSONL")
    return rows


def _label(value: Any, *, task: str, row_id: str, field: str) -> str:
    try:
        return normalize_label(value, task=task)
    except ValueError as err:
        raise RowError(row_id, field, "unknown label", str(err)) from None


def _resolve_image(value: Any, *, row_id: str, field: str, root: Path) -> Any:
    """A path made absolute and checked to exist; bytes / dicts / PIL images pass through."""
    if isinstance(value, dict) and value.get("bytes") is None and value.get("path"):
        value = value["path"]
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute():
            path = root / path
        if not path.is_file():
            raise RowError(row_id, field, "missing image", f"image file not found: {path}")
        return os.path.abspath(path)  # absolute: records move between folders (records JSONL, workers)
    if value is None:
        raise RowError(row_id, field, "missing image", "image is null")
    return value


def _make_record(row_id: str, field: str, **fields: Any) -> GuardRecord:
    """Construct a record; a validation error becomes a RowError with a reason."""
    if not (fields.get("request") or "").strip() and not fields.get("images"):
        raise RowError(row_id, field, "no request", "row has no request text and no image")
    try:
        return GuardRecord(id=row_id, **fields)
    except ValueError as err:
        raise RowError(row_id, field, "invalid record", str(err)) from None


def _emit(rows: Iterable[tuple[str, Any]], build: Callable[[str, Any], GuardRecord], policy: ErrorPolicy) -> Iterator[GuardRecord]:
    """Build each ``(row_id, row)`` under the policy; yield the good ones; reject duplicate ids."""
    seen: set[str] = set()
    for row_id, row in rows:
        if row_id in seen:
            policy.record(RowError(row_id, "id", "duplicate id", "id appears twice in the input"))
            continue
        seen.add(row_id)
        record = policy.call(build, row_id, row)
        if record is not None:
            yield record


# ------------------------------------------------------------------------------------------ VLTrain
def _vltrain_row(row_id: str, row: Any, *, source: str, root: Path) -> GuardRecord:
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        raise RowError(row_id, "messages", "bad row", "row has no 'messages' list")
    messages = row["messages"]
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if "user" not in roles:
        raise RowError(row_id, "messages", "bad row", "no user message")
    if "assistant" not in roles:
        raise RowError(row_id, "messages", "bad row", "no assistant message (the reasoning target)")
    u, a = roles.index("user"), roles.index("assistant")
    user, target = messages[u].get("content"), messages[a].get("content")
    try:
        parsed = parse_transcript(user)
    except ValueError as err:
        raise RowError(row_id, f"messages[{u}].content", "bad transcript", str(err)) from None
    images = row.get("images") or []
    if isinstance(images, str):
        images = [images]
    if len(images) != parsed.num_images:
        raise RowError(
            row_id, "images", "image count mismatch",
            f"{len(images)} image(s) for {parsed.num_images} <image> placeholder(s) in the transcript",
        )
    verdict = parse_verdict(target)
    if verdict.request is None or verdict.response is None:
        raise RowError(
            row_id, f"messages[{a}].content", "unknown label",
            "the assistant target has no readable 'Request:' and 'Response:' labels in one <result> block",
        )
    if (verdict.response == NO_RESPONSE) != (parsed.response is None):
        raise RowError(
            row_id, f"messages[{a}].content", "label mismatch",
            f"target says Response: {verdict.response} but the transcript "
            + ("has no response" if parsed.response is None else "has a response"),
        )
    resolved = tuple(
        _resolve_image(image, row_id=row_id, field=f"images[{i}]", root=root) for i, image in enumerate(images)
    )
    return _make_record(
        row_id, f"messages[{u}].content",
        source=source, request=parsed.request, request_label=verdict.request,
        response=parsed.response, response_label=verdict.response, images=resolved, reasoning=target,
    )


def read_vltrain(
    path: Path, *, image_root: Optional[Path] = None, policy: Optional[ErrorPolicy] = None, source: Optional[str] = None
) -> Iterator[GuardRecord]:
    """GuardReasoner-VLTrain rows (file or folder of ``text/image/text_image.json``).

    Request and response are parsed back out of the transcript (the inverse of
    ``build_transcript``); labels come from the assistant target through ``parse_verdict``; the
    target itself is kept as ``reasoning``. Images resolve against ``image_root`` (default: the
    JSON file's folder). Source names are ``vltrain_<stem>``.
    """
    path = Path(path)
    policy = policy or ErrorPolicy()
    if path.is_dir():
        files = [path / name for name in VLTRAIN_FILES if (path / name).is_file()]
        if not files:
            raise FileNotFoundError(f"{path}: no {', '.join(VLTRAIN_FILES)} in this folder")
        for file in files:
            yield from read_vltrain(file, image_root=image_root, policy=policy, source=source)
        return
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    stem = path.stem
    root = Path(image_root) if image_root else path.parent
    rows = _load_json_rows(path)
    src = source or f"vltrain_{stem}"
    yield from _emit(
        ((f"{stem}-{i:06d}", row) for i, row in enumerate(rows)),
        lambda rid, row: _vltrain_row(rid, row, source=src, root=root),
        policy,
    )


# ---------------------------------------------------------------------------------------- benchmarks
def _labels_from_text(text: Any) -> dict[str, Any]:
    """``{"request": ..., "response": ...}`` named in a label string (last occurrence of each wins).

    Empty for a bare label (``"harmful"``, ``1``, ``True``): it belongs to the benchmark's task.
    """
    if not isinstance(text, str):
        return {}
    return {m.group(1).lower(): m.group(2) for m in _LABEL_SLOT.finditer(text)}


def _benchmark_labels(output: Any, tasks: tuple, *, row_id: str, field: str, has_response: bool) -> dict:
    """Labels for a benchmark row; slots not given are filled with a placeholder and listed as unlabelled."""
    found = _labels_from_text(output)
    if not found:  # a bare label belongs to the benchmark's single task
        if len(tasks) != 1:
            raise RowError(row_id, field, "unknown label", f"bare label {output!r} but the benchmark scores {tasks}")
        found = {"request" if tasks[0] == PROMPT else "response": output}
    for task in tasks:
        slot = "request" if task == PROMPT else "response"
        if slot not in found:
            raise RowError(row_id, field, "unknown label", f"no {slot} label in {output!r}")
    unlabelled = []
    request = _label(found["request"], task="request", row_id=row_id, field=field) if "request" in found else None
    if request is None:
        request, unlabelled = UNHARMFUL, unlabelled + ["request"]
    if "response" in found:
        response = _label(found["response"], task="response", row_id=row_id, field=field)
    else:
        response = NO_RESPONSE
        if has_response:
            unlabelled.append("response")
    if not has_response and response != NO_RESPONSE:
        if RESPONSE in tasks:
            raise RowError(row_id, field, "label mismatch", f"response label {response!r} but the row has no response")
        response = NO_RESPONSE  # prompt-task row whose label string also judged an absent response
    return {"request_label": request, "response_label": response, "unlabelled": unlabelled}


def _image_index(folder: Path) -> dict[str, list[Path]]:
    index: dict[str, list[Path]] = {}
    if folder.is_dir():
        for file in folder.iterdir():
            if file.suffix.lower() in IMAGE_SUFFIXES:
                index.setdefault(file.stem, []).append(file)
    return index


def _benchmark_row(row_id: str, row: Any, *, name: str, tasks: tuple, images: dict, image_root: Path) -> GuardRecord:
    if not isinstance(row, dict):
        raise RowError(row_id, "row", "bad row", "row is not a JSON object")
    if "messages" in row:  # VL layout: [user: instruction + transcript, assistant: labels]
        messages = row["messages"]
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        answers = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
        if not users or not answers:
            raise RowError(row_id, "messages", "bad row", "expected a user and an assistant message")
        text, output, field, label_field = users[0].get("content"), answers[0].get("content"), "messages[0].content", "messages[1].content"
    else:  # text layout: {"instruction"?, "input", "output"}
        if "input" not in row or "output" not in row:
            raise RowError(row_id, "input", "bad row", "text benchmark rows need 'input' and 'output'")
        text, output, field, label_field = row["input"], row["output"], "input", "output"
    try:
        parsed = parse_transcript(text)
    except ValueError as err:
        raise RowError(row_id, field, "bad transcript", str(err)) from None
    labels = _benchmark_labels(output, tasks, row_id=row_id, field=label_field, has_response=parsed.response is not None)
    resolved: tuple = ()
    if parsed.num_images > 1:
        raise RowError(row_id, field, "image count mismatch", f"{parsed.num_images} <image> placeholders; the guard takes one")
    if parsed.num_images == 1:
        if row.get("image"):
            resolved = (_resolve_image(row["image"], row_id=row_id, field="image", root=image_root),)
        else:
            matches = images.get(row_id, [])
            if not matches:
                raise RowError(row_id, "image", "missing image", f"no image named {row_id}.<ext> in {image_root}")
            if len(matches) > 1:
                raise RowError(row_id, "image", "ambiguous image", f"several images for this id: {sorted(map(str, matches))}")
            resolved = (os.path.abspath(matches[0]),)
    meta = {TASKS_META_KEY: list(tasks)}
    if labels["unlabelled"]:
        meta[UNLABELLED_META_KEY] = labels["unlabelled"]
    return _make_record(
        row_id, field, source=name, request=parsed.request, request_label=labels["request_label"],
        response=parsed.response, response_label=labels["response_label"], images=resolved, meta=meta,
    )


def read_benchmark(
    name: str,
    path: Path,
    *,
    image_root: Optional[Path] = None,
    task: Optional[str] = None,
    policy: Optional[ErrorPolicy] = None,
) -> Iterator[GuardRecord]:
    """One released benchmark file's records; ``data_source`` is the benchmark's display name
    (``SPA_VL_Eval`` rows become ``SPA-VL-Eval``; see :mod:`data_prep.benchmarks`).

    Parameters
    ----------
    name : str
        The released file stem (``ToxicChat``, ``SPA_VL_Eval``, ``WildGuardTestPrompt``, ...), or any
        name with ``task`` given for a benchmark not in the table (its rows then carry ``name``).
    path : Path
        ``<name>.json`` (JSON list or JSONL; ``.jsonl`` and ``.parquet`` files with the same
        columns work too), or a folder holding ``<name>.json``.
    image_root : Path, optional
        Folder with the images of a VL benchmark, one file ``<id>.<ext>`` per row (default:
        ``<json folder>/images/<name>``). Images are matched by id, never by position; a row may
        also name its image with an ``"image"`` path.
    task : {"prompt", "response", "both"}, optional
        Tasks scored, for a benchmark not in the table.
    """
    path = Path(path)
    if path.is_dir():
        path = path / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"benchmark {name!r}: no such file {path}")
    if task is not None:
        tasks = TASKS if task == "both" else (task,)
        if not set(tasks) <= set(TASKS):
            raise ValueError(f"task must be prompt, response or both, got {task!r}")
        source = name
    else:
        info = benchmark_file(name)
        tasks, source = info.tasks, info.name
    policy = policy or ErrorPolicy()
    root = Path(image_root) if image_root else path.parent / "images" / name
    images = _image_index(root)
    rows = _load_json_rows(path) if path.suffix.lower() in (".json", ".jsonl") else list(_table_rows(path))

    def row_id(i: int, row: Any) -> str:
        return str(row["id"]) if isinstance(row, dict) and row.get("id") not in (None, "") else f"{name}-{i:06d}"

    yield from _emit(
        ((row_id(i, row), row) for i, row in enumerate(rows)),
        lambda rid, row: _benchmark_row(rid, row, name=source, tasks=tasks, images=images, image_root=root),
        policy,
    )


# ------------------------------------------------------------------------------ generic tables, HF
def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip())


def _mapped_row(row_id: str, row: Mapping[str, Any], *, mapping: Mapping[str, str], source: str, root: Path) -> GuardRecord:
    def get(field: str) -> Any:
        return row.get(mapping.get(field, field))

    def col(field: str) -> str:
        return mapping.get(field, field)

    request = get("request")
    request = "" if _is_missing(request) else str(request)
    response = get("response")
    response = None if _is_missing(response) else str(response)
    request_label = _label(get("request_label"), task="request", row_id=row_id, field=col("request_label"))
    response_label = _label(get("response_label"), task="response", row_id=row_id, field=col("response_label"))
    raw_images: list = []
    field = col("image")
    for name in ("images", "image"):
        value = get(name)
        if isinstance(value, (list, tuple)) and value:
            raw_images, field = list(value), col(name)
            break
        if not isinstance(value, (list, tuple)) and not _is_missing(value):
            raw_images, field = [value], col(name)
            break
    images = tuple(
        _resolve_image(img, row_id=row_id, field=f"{field}[{i}]", root=root) for i, img in enumerate(raw_images)
    )
    reasoning = get("reasoning")
    return _make_record(
        row_id, col("request"), source=str(get("source") or source), request=request,
        request_label=request_label, response=response, response_label=response_label,
        images=images, reasoning=None if _is_missing(reasoning) else str(reasoning),
    )


def _table_rows(path: Path) -> Iterator[dict]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        yield from _load_json_rows(path)
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            yield from csv.DictReader(handle)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield from batch.to_pylist()
    else:
        raise ValueError(f"{path}: unsupported table format {suffix!r}; use .jsonl, .json, .csv or .parquet")


def _mapped_records(
    rows: Iterable[Mapping[str, Any]], *, mapping: Mapping[str, str], source: str, root: Path, policy: ErrorPolicy
) -> Iterator[GuardRecord]:
    id_column = mapping.get("id", "id")

    def keyed() -> Iterator[tuple[str, Any]]:
        for i, row in enumerate(rows):
            value = row.get(id_column) if isinstance(row, Mapping) else None
            yield (f"{source}-{i:06d}" if _is_missing(value) else str(value)), row

    def build(rid: str, row: Any) -> GuardRecord:
        if not isinstance(row, Mapping):
            raise RowError(rid, "row", "bad row", "row is not an object")
        return _mapped_row(rid, row, mapping=mapping, source=source, root=root)

    yield from _emit(keyed(), build, policy)


def read_table(
    path: Path,
    *,
    mapping: Optional[Mapping[str, str]] = None,
    source: Optional[str] = None,
    image_root: Optional[Path] = None,
    policy: Optional[ErrorPolicy] = None,
) -> Iterator[GuardRecord]:
    """Generic JSONL / JSON / CSV / parquet rows; ``mapping`` maps record fields to column names.

    Unmapped fields use their own name as the column. Rows without an id get ``<source>-<row:06d>``
    (``source`` defaults to the file stem). Image cells may hold a path (relative to
    ``image_root``, default the file's folder), bytes or a ``{"bytes", "path"}`` dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    yield from _mapped_records(
        _table_rows(path), mapping=mapping or {}, source=source or path.stem,
        root=Path(image_root) if image_root else path.parent, policy=policy or ErrorPolicy(),
    )


def read_hf(
    name_or_path: str,
    *,
    split: str = "train",
    mapping: Optional[Mapping[str, str]] = None,
    source: Optional[str] = None,
    image_root: Optional[Path] = None,
    policy: Optional[ErrorPolicy] = None,
) -> Iterator[GuardRecord]:
    """A Hugging Face dataset (hub name or local folder) through ``datasets.load_dataset``, streamed."""
    import datasets

    dataset = datasets.load_dataset(str(name_or_path), split=split, streaming=True)
    default_source = Path(str(name_or_path)).name or str(name_or_path)
    yield from _mapped_records(
        dataset, mapping=mapping or {}, source=source or default_source,
        root=Path(image_root) if image_root else Path(str(name_or_path)), policy=policy or ErrorPolicy(),
    )


# ------------------------------------------------------------------------------------------ dispatch
FORMATS = ("auto", "vltrain", "records", "table", "hf", "benchmark")


def detect_format(path: Path) -> str:
    """Guess the layout of ``path`` (``vltrain``, ``records`` or ``table``)."""
    path = Path(path)
    if path.is_dir():
        if any((path / name).is_file() for name in VLTRAIN_FILES):
            return "vltrain"
        return "hf"
    if path.suffix.lower() in (".json", ".jsonl"):
        if looks_like_records(path):
            return "records"
        with open(path, encoding="utf-8") as handle:
            head = handle.read(4096)
        if '"messages"' in head:
            return "vltrain"
    return "table"


def read_any(
    path: str,
    *,
    fmt: str = "auto",
    mapping: Optional[Mapping[str, str]] = None,
    source: Optional[str] = None,
    image_root: Optional[Path] = None,
    split: str = "train",
    benchmark: Optional[str] = None,
    policy: Optional[ErrorPolicy] = None,
) -> Iterator[GuardRecord]:
    """Dispatch to the reader for ``fmt`` (``auto`` guesses from the path)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    policy = policy or ErrorPolicy()
    if fmt == "auto":
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file or folder (use --format hf for a hub dataset)")
        fmt = detect_format(Path(path))
    if fmt == "vltrain":
        return read_vltrain(Path(path), image_root=image_root, policy=policy, source=source)
    if fmt == "records":
        return read_records(Path(path), policy=policy)
    if fmt == "table":
        return read_table(Path(path), mapping=mapping, source=source, image_root=image_root, policy=policy)
    if fmt == "hf":
        return read_hf(path, split=split, mapping=mapping, source=source, image_root=image_root, policy=policy)
    name = benchmark or Path(path).stem
    return read_benchmark(name, Path(path), image_root=image_root, policy=policy)

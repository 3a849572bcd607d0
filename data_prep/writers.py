"""Writers: records → verl RL parquet, verl SFT parquet, LLaMA-Factory sharegpt, evaluation files.

All writers stream: rows are shaped one at a time by a pure row function (:func:`rl_row`,
:func:`sft_row`, :func:`eval_record`), buffered, and flushed as a parquet row group every
``rows_per_group`` rows (1000; 100 when the buffer holds image rows, so image bytes never pile
up), against a declared schema (an empty output is still typed). Output goes to a hidden temporary
file renamed on success (:mod:`data_prep.atomic`), so a crash leaves no output file.

RL parquet (verl ``RLHFDataset``, docs/design.md §9)::

    data_source   string                       one per source / benchmark
    prompt        list<{role, content}>        [system INSTRUCTION, user transcript with <image>]
    images        list<{bytes, max_pixels, min_pixels}>   one per <image>; [] for text rows
    ability       string                       "safety"
    reward_model  {style: "rule", ground_truth: "Request: …\\nResponse: …"}
    extra_info    struct, the same fields on every row (EXTRA_INFO_TYPE)

SFT parquet (verl ``MultiTurnSFTDataset``): ``messages`` = [system, user, assistant target] and
``images`` as above, plus ``id``/``data_source``/``modality`` for bookkeeping.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.atomic import atomic_output
from data_prep.errors import ErrorPolicy, RowError
from data_prep.images import MAX_IMAGE_PIXELS, PreparedImage, load_image, prepare_image
from data_prep.record import UNLABELLED_META_KEY, GuardRecord
from data_prep.records_io import RecordWriter
from data_prep.transcript import record_messages
from rewards.grammar import parse_verdict

#: Per-image pixel budget handed to the Qwen2.5-VL processor (``max_pixels``): 1280 visual tokens
#: of 28x28, so an image plus the transcript fits the paper's 3072-token prompt limit.
DEFAULT_MAX_PIXELS = 1280 * 28 * 28
#: Per-image lower bound (``min_pixels``): 4 visual tokens, Qwen2.5-VL's own minimum.
DEFAULT_MIN_PIXELS = 4 * 28 * 28
#: R-SFT image budget: LLaMA-Factory's defaults (``image_max_pixels`` 768 x 768, ``image_min_pixels``
#: 32 x 32), which the released R-SFT run trained with (about 752 visual tokens at most per image).
SFT_MAX_PIXELS = 768 * 768
SFT_MIN_PIXELS = 32 * 32
#: Longest side stored in the files; larger images are shrunk (the processor would shrink them anyway).
DEFAULT_MAX_SIDE = 2048
#: Rows per parquet row group: text rows / rows holding images.
ROWS_PER_GROUP = 1000
IMAGE_ROWS_PER_GROUP = 100
#: Token estimate: characters per text token (English BPE ~4) and per-message chat-template overhead.
CHARS_PER_TOKEN = 4
TEMPLATE_TOKENS_PER_MESSAGE = 5
GENERATION_PROMPT_TOKENS = 3
PATCH_PIXELS = 28 * 28  # one Qwen2.5-VL visual token after 2x2 merge of 14px patches
ABILITY = "safety"

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("max_pixels", pa.int64()), ("min_pixels", pa.int64())])
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
EXTRA_INFO_TYPE = pa.struct([
    ("id", pa.string()),
    ("index", pa.int64()),
    ("split", pa.string()),
    ("modality", pa.string()),
    ("source", pa.string()),
    ("concat_of", pa.list_(pa.string())),
    ("has_response", pa.bool_()),
    ("request_label", pa.string()),
    ("response_label", pa.string()),
])
RL_SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(MESSAGE_TYPE)),
    ("images", pa.list_(IMAGE_TYPE)),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", EXTRA_INFO_TYPE),
])
SFT_SCHEMA = pa.schema([
    ("messages", pa.list_(MESSAGE_TYPE)),
    ("images", pa.list_(IMAGE_TYPE)),
    ("id", pa.string()),
    ("data_source", pa.string()),
    ("modality", pa.string()),
])


@dataclass(frozen=True)
class ImageOptions:
    """How images are stored: pixel budget for the processor, largest stored side, encoding."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_side: Optional[int] = DEFAULT_MAX_SIDE
    fmt: str = "PNG"
    #: decompression-bomb limit
    limit_pixels: int = MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels} and {self.max_pixels}")
        if self.max_side is not None and self.max_side < 28:
            raise ValueError(f"max_side must be at least 28 pixels, got {self.max_side}")
        if self.fmt.upper() not in ("PNG", "JPEG", "JPG"):
            raise ValueError(f"image format must be PNG or JPEG, got {self.fmt!r}")


#: Image options of the R-SFT writers (``build-sft``, ``export-llamafactory``).
SFT_IMAGE_OPTIONS = ImageOptions(max_pixels=SFT_MAX_PIXELS, min_pixels=SFT_MIN_PIXELS)


@dataclass
class WriteSummary:
    """Counts for the closing summary of a build."""

    output: str = ""
    rows_in: int = 0
    rows_out: int = 0
    images: int = 0
    images_resized: int = 0
    images_reencoded: int = 0
    est_prompt_tokens_total: int = 0
    est_prompt_tokens_max: int = 0
    by_source: Counter = field(default_factory=Counter)
    by_modality: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    skipped_examples: list = field(default_factory=list)

    @property
    def est_prompt_tokens_mean(self) -> float:
        return self.est_prompt_tokens_total / self.rows_out if self.rows_out else 0.0

    def as_dict(self) -> dict:
        return {
            "output": self.output, "rows_in": self.rows_in, "rows_out": self.rows_out,
            "skipped": dict(self.skipped), "images": self.images, "images_resized": self.images_resized,
            "images_reencoded": self.images_reencoded,
            "est_prompt_tokens": {"mean": round(self.est_prompt_tokens_mean, 1), "max": self.est_prompt_tokens_max,
                                  "total": self.est_prompt_tokens_total},
            "by_source": dict(self.by_source), "by_modality": dict(self.by_modality),
        }


# -------------------------------------------------------------------------------------- estimates
def estimate_image_tokens(width: int, height: int, *, max_pixels: int, min_pixels: int) -> int:
    """Visual tokens Qwen2.5-VL spends on one image: pixels clamped to the budget / 28², plus 2 markers."""
    pixels = min(max(width * height, min_pixels), max_pixels)
    return max(1, round(pixels / PATCH_PIXELS)) + 2


def estimate_prompt_tokens(messages: list[dict], image_sizes: Iterable[tuple[int, int]], options: ImageOptions) -> int:
    """A cheap prompt-length estimate (no tokenizer): ceil(chars / 4) + template overhead + image tokens.

    Meant for the summary and for spotting outliers, not for filtering: verl's ``RLHFDataset``
    (``filter_overlong_prompts``) measures exactly.
    """
    text = sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
    visual = sum(
        estimate_image_tokens(w, h, max_pixels=options.max_pixels, min_pixels=options.min_pixels) for w, h in image_sizes
    )
    return text + GENERATION_PROMPT_TOKENS + visual


# ------------------------------------------------------------------------------------- row shaping
@dataclass(frozen=True)
class ShapedRow:
    row: dict
    images: tuple  # PreparedImage per image
    est_prompt_tokens: int


def _prepare_images(record: GuardRecord, options: ImageOptions) -> tuple[PreparedImage, ...]:
    return tuple(
        prepare_image(image, row_id=record.id, field=f"images[{i}]", max_side=options.max_side,
                      fmt=options.fmt, max_pixels=options.limit_pixels)
        for i, image in enumerate(record.images)
    )


def _image_cells(images: tuple[PreparedImage, ...], options: ImageOptions) -> list[dict]:
    return [{"bytes": im.data, "max_pixels": options.max_pixels, "min_pixels": options.min_pixels} for im in images]


def extra_info(record: GuardRecord, *, index: int, split: str) -> dict:
    """The fixed-schema ``extra_info`` (EXTRA_INFO_TYPE) of one RL row."""
    return {
        "id": record.id, "index": index, "split": split, "modality": record.modality, "source": record.source,
        "concat_of": list(record.concat_of), "has_response": record.has_response,
        "request_label": record.request_label, "response_label": record.response_label,
    }


def _require_labels(record: GuardRecord) -> None:
    """Training rows need both labels: a benchmark row whose reader filled a placeholder (listed in
    ``meta["unlabelled"]``) would otherwise train, or be scored, on a label nobody gave."""
    unlabelled = list(record.meta.get(UNLABELLED_META_KEY, ()))
    if unlabelled:
        slot = unlabelled[0]
        raise RowError(
            record.id, f"{slot}_label", "unlabelled slot",
            f"the source gives no {slot} label (it labels only the other task); RL and SFT rows need both labels",
        )


def validate_rl_record(record: GuardRecord, *, options: ImageOptions = ImageOptions()) -> GuardRecord:
    """``record`` if it would make an RL row, else the :class:`RowError` :func:`rl_row` would raise.

    Checks what can fail in :func:`rl_row` (both labels, the transcript, every image decodes within the
    pixel limit) without encoding anything. Concatenation draws its parents only from records that
    pass, so a corrupt image is skipped (or reported) once, before any pair is drawn.
    """
    _require_labels(record)
    record_messages(record)
    for i, image in enumerate(record.images):
        load_image(image, row_id=record.id, field=f"images[{i}]", max_pixels=options.limit_pixels)
    return record


def rl_row(record: GuardRecord, *, index: int, split: str, options: ImageOptions) -> ShapedRow:
    """One RL parquet row (RL_SCHEMA) for verl's ``RLHFDataset``."""
    _require_labels(record)
    messages = record_messages(record)
    images = _prepare_images(record, options)
    row = {
        "data_source": record.source,
        "prompt": messages,
        "images": _image_cells(images, options),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": record.ground_truth},
        "extra_info": extra_info(record, index=index, split=split),
    }
    est = estimate_prompt_tokens(messages, [(im.width, im.height) for im in images], options)
    return ShapedRow(row, images, est)


def sft_row(record: GuardRecord, *, index: int, split: str, options: ImageOptions) -> ShapedRow:
    """One SFT parquet row (SFT_SCHEMA) for verl's ``MultiTurnSFTDataset``.

    The target must exist and agree with the record's labels: a trace that argues for the wrong
    label would teach the model exactly that.
    """
    _require_labels(record)
    if not record.reasoning:
        raise RowError(record.id, "reasoning", "no reasoning target", "SFT needs a reasoning target")
    verdict = parse_verdict(record.reasoning)
    if not verdict.format_ok or (verdict.request, verdict.response) != (record.request_label, record.response_label):
        raise RowError(
            record.id, "reasoning", "target disagrees with labels",
            f"target reads Request: {verdict.request}, Response: {verdict.response} (format ok: {verdict.format_ok}); "
            f"labels are {record.request_label}/{record.response_label}",
        )
    messages = record_messages(record, with_target=True)
    images = _prepare_images(record, options)
    row = {
        "messages": messages, "images": _image_cells(images, options),
        "id": record.id, "data_source": record.source, "modality": record.modality,
    }
    est = estimate_prompt_tokens(messages[:2], [(im.width, im.height) for im in images], options)
    return ShapedRow(row, images, est)


RowFn = Callable[..., ShapedRow]


# ------------------------------------------------------------------------------------ parquet sink
class ParquetSink:
    """Streaming parquet writer: declared schema, row groups flushed every N rows, atomic rename.

    Use as a context manager; on an exception the temporary file is removed and nothing appears
    at ``path``.
    """

    def __init__(
        self, path: Path, schema: pa.Schema, *, rows_per_group: int = ROWS_PER_GROUP,
        image_rows_per_group: int = IMAGE_ROWS_PER_GROUP,
    ) -> None:
        if rows_per_group < 1 or image_rows_per_group < 1:
            raise ValueError("rows per group must be positive")
        self.path = Path(path)
        self.schema = schema
        self.rows_per_group = rows_per_group
        self.image_rows_per_group = image_rows_per_group
        self._buffer: list[dict] = []
        self._buffer_has_images = False
        self._atomic = atomic_output(self.path)
        self._writer: Optional[pq.ParquetWriter] = None
        self.rows_written = 0

    def __enter__(self) -> "ParquetSink":
        tmp = self._atomic.__enter__()
        self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")
        return self

    def write(self, row: dict, *, has_images: bool = False) -> None:
        self._buffer.append(row)
        self._buffer_has_images |= has_images
        limit = self.image_rows_per_group if self._buffer_has_images else self.rows_per_group
        if len(self._buffer) >= limit:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            table = pa.Table.from_pylist(self._buffer, schema=self.schema)
            self._writer.write_table(table)
            self.rows_written += len(self._buffer)
            self._buffer, self._buffer_has_images = [], False

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._writer.close()
        self._atomic.__exit__(exc_type, exc, tb)
        return False


def _write_parquet(
    records: Iterable[GuardRecord], path: Path, *, schema: pa.Schema, row_fn: RowFn, split: str,
    options: ImageOptions, policy: ErrorPolicy, start_index: int = 0,
) -> WriteSummary:
    summary = WriteSummary(output=str(path))
    skipped_before = Counter(policy.skipped)
    with ParquetSink(path, schema) as sink:
        index = start_index
        for record in records:
            summary.rows_in += 1
            shaped = policy.call(row_fn, record, index=index, split=split, options=options)
            if shaped is None:
                continue
            sink.write(shaped.row, has_images=bool(shaped.images))
            index += 1
            _count(summary, record, shaped)
    summary.skipped = policy.skipped - skipped_before
    summary.skipped_examples = list(policy.examples)
    return summary


def _count(summary: WriteSummary, record: GuardRecord, shaped: ShapedRow) -> None:
    summary.rows_out += 1
    summary.images += len(shaped.images)
    summary.images_resized += sum(im.resized for im in shaped.images)
    summary.images_reencoded += sum(im.reencoded for im in shaped.images)
    summary.est_prompt_tokens_total += shaped.est_prompt_tokens
    summary.est_prompt_tokens_max = max(summary.est_prompt_tokens_max, shaped.est_prompt_tokens)
    summary.by_source[record.source] += 1
    summary.by_modality[record.modality] += 1


def write_rl(
    records: Iterable[GuardRecord], path: Path, *, split: str = "train", options: ImageOptions = ImageOptions(),
    policy: Optional[ErrorPolicy] = None,
) -> WriteSummary:
    """RL parquet for verl's ``RLHFDataset`` (see the module docstring for the schema)."""
    return _write_parquet(records, Path(path), schema=RL_SCHEMA, row_fn=rl_row, split=split, options=options,
                          policy=policy or ErrorPolicy())


def write_sft(
    records: Iterable[GuardRecord], path: Path, *, split: str = "train", options: ImageOptions = SFT_IMAGE_OPTIONS,
    policy: Optional[ErrorPolicy] = None,
) -> WriteSummary:
    """SFT parquet for verl's ``MultiTurnSFTDataset`` (``messages`` incl. the assistant target, ``images``).

    Images carry the R-SFT pixel budget by default (:data:`SFT_IMAGE_OPTIONS`, the released run's).
    """
    return _write_parquet(records, Path(path), schema=SFT_SCHEMA, row_fn=sft_row, split=split, options=options,
                          policy=policy or ErrorPolicy())


# --------------------------------------------------------------------------------- JSON-ish outputs
class _JsonArrayWriter:
    """Stream a JSON list (``[`` row, row, … ``]``) to an open file."""

    def __init__(self, handle) -> None:
        self.handle, self.first = handle, True
        handle.write("[\n")

    def write(self, obj: dict) -> None:
        self.handle.write(("  " if self.first else ",\n  ") + json.dumps(obj, ensure_ascii=False))
        self.first = False

    def close(self) -> None:
        self.handle.write("\n]\n")


def _save_image_files(record: GuardRecord, images: tuple[PreparedImage, ...], folder: Path, rel_prefix: str) -> list[str]:
    paths = []
    for i, image in enumerate(images):
        ext = "png" if image.data[:8] == b"\x89PNG\r\n\x1a\n" else "jpg"
        name = f"{record.id}.{ext}" if len(images) == 1 else f"{record.id}-{i}.{ext}"
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target) as tmp:
            tmp.write_bytes(image.data)
        paths.append(f"{rel_prefix}/{name}")
    return paths


def llamafactory_row(record: GuardRecord, *, index: int, split: str, options: ImageOptions) -> ShapedRow:
    """A sharegpt row; images are kept as PreparedImage and written to files by the exporter."""
    shaped = sft_row(record, index=index, split=split, options=options)
    row = {"messages": shaped.row["messages"], "id": record.id}
    return ShapedRow(row, shaped.images, shaped.est_prompt_tokens)


def llamafactory_dataset_info(name: str, file_name: str) -> dict:
    """The ``dataset_info.json`` entry for a sharegpt file with ``messages`` and ``images``."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                     "assistant_tag": "assistant", "system_tag": "system"},
        }
    }


def llamafactory_train_args(name: str, dataset_dir: Path, options: ImageOptions) -> str:
    """A LLaMA-Factory training config (yaml) for R-SFT on an export, as the released run trained.

    LLaMA-Factory reads the image budget from its training arguments (``image_max_pixels``,
    ``image_min_pixels``), not from the dataset, so the export writes them here together with the
    paper's R-SFT hyper-parameters; the model and output folder are left to the command line::

        llamafactory-cli train <name>_sft.yaml model_name_or_path=Qwen/Qwen2.5-VL-7B-Instruct output_dir=saves/r-sft
    """
    return "\n".join([
        f"# R-SFT on the {name} export (guardreasoner-vl export-llamafactory). Complete on the command line:",
        f"#   llamafactory-cli train {name}_sft.yaml model_name_or_path=... output_dir=...",
        "# Global batch 192 = GPUs x per_device_train_batch_size x gradient_accumulation_steps (paper);",
        "# the released run used 8 GPUs x 6 x 4.",
        "stage: sft",
        "do_train: true",
        "finetuning_type: full",
        "template: qwen2_vl",
        f"dataset: {name}",
        f"dataset_dir: {json.dumps(str(Path(dataset_dir).resolve()))}",
        "# the image budget the export was written for (LLaMA-Factory's defaults, the released run's)",
        f"image_max_pixels: {options.max_pixels}",
        f"image_min_pixels: {options.min_pixels}",
        "# vision tower and projector frozen, as LLaMA-Factory's defaults (and the released run) have them",
        "freeze_vision_tower: true",
        "freeze_multi_modal_projector: true",
        "cutoff_len: 2048",
        "learning_rate: 5.0e-5",
        "num_train_epochs: 3.0",
        "lr_scheduler_type: cosine",
        "warmup_steps: 0",
        "weight_decay: 0.0",
        "max_grad_norm: 1.0",
        "per_device_train_batch_size: 6",
        "gradient_accumulation_steps: 4",
        "bf16: true",
        "",
    ])


def export_llamafactory(
    records: Iterable[GuardRecord], out_dir: Path, *, name: str = "guardreasoner_vl_train",
    options: ImageOptions = SFT_IMAGE_OPTIONS, policy: Optional[ErrorPolicy] = None,
) -> WriteSummary:
    """``<out_dir>/<name>.json`` (sharegpt), images under ``<out_dir>/images/<name>/``, the entry
    merged into ``<out_dir>/dataset_info.json`` (other entries kept), and ``<out_dir>/<name>_sft.yaml``,
    a LLaMA-Factory training config with the image budget ``options`` sets
    (:func:`llamafactory_train_args`)."""
    out_dir = Path(out_dir)
    policy = policy or ErrorPolicy()
    file_name = f"{name}.json"
    summary = WriteSummary(output=str(out_dir / file_name))
    skipped_before = Counter(policy.skipped)
    with atomic_output(out_dir / file_name) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        array = _JsonArrayWriter(handle)
        for index, record in enumerate(records):
            summary.rows_in += 1
            shaped = policy.call(llamafactory_row, record, index=index, split="train", options=options)
            if shaped is None:
                continue
            row = dict(shaped.row)
            row["messages"] = [dict(m) for m in row["messages"]]
            row["images"] = _save_image_files(record, shaped.images, out_dir / "images" / name, f"images/{name}")
            array.write(row)
            _count(summary, record, shaped)
        array.close()
    info_path = out_dir / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    info.update(llamafactory_dataset_info(name, file_name))
    with atomic_output(info_path) as tmp:
        tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with atomic_output(out_dir / f"{name}_sft.yaml") as tmp:
        tmp.write_text(llamafactory_train_args(name, out_dir, options), encoding="utf-8")
    summary.skipped = policy.skipped - skipped_before
    summary.skipped_examples = list(policy.examples)
    return summary


def eval_record(record: GuardRecord, *, index: int, split: str, options: ImageOptions) -> ShapedRow:
    """A benchmark record made ready for an evaluation file (``row`` is the record itself).

    Its images are validated and normalised as training images are (EXIF orientation, size cap,
    decompression-bomb guard) and held as bytes, so the records writer stores them next to the
    file: an evaluation folder is self-contained and the guard sees what RL validation would.
    """
    images = _prepare_images(record, options)
    ready = record.evolve(images=tuple(im.data for im in images)) if images else record
    est = estimate_prompt_tokens(record_messages(record), [(im.width, im.height) for im in images], options)
    return ShapedRow(ready, images, est)


def write_eval_file(
    records: Iterable[GuardRecord], path: Path, *, options: ImageOptions = ImageOptions(),
    policy: Optional[ErrorPolicy] = None,
) -> WriteSummary:
    """One evaluation file: the records JSONL (:mod:`data_prep.records_io`) of one released
    benchmark file, images under ``<folder>/images/``; ``evaluate`` reads it with ``read_records``.

    The tasks a row is scored on and the label slots its source leaves empty travel in
    ``meta["tasks"]`` / ``meta["unlabelled"]``, as :func:`data_prep.readers.read_benchmark` set them.
    """
    path = Path(path)
    policy = policy or ErrorPolicy()
    summary = WriteSummary(output=str(path))
    skipped_before = Counter(policy.skipped)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        writer = RecordWriter(handle, path.parent)
        for index, record in enumerate(records):
            summary.rows_in += 1
            shaped = policy.call(eval_record, record, index=index, split="test", options=options)
            if shaped is None:
                continue
            writer.write(shaped.row)
            _count(summary, record, shaped)
    summary.skipped = policy.skipped - skipped_before
    summary.skipped_examples = list(policy.examples)
    return summary

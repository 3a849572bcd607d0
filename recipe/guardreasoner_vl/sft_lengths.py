"""Measure R-SFT rows exactly as verl will tokenize them; drop, or prompt-truncate, the ones over ``max_length``.

The R-SFT config keeps verl's ``truncation: error``: cutting a row at ``max_length`` would train on a
reasoning trace without its verdict. Then one row longer than ``data.max_length`` stops the run when
the data loader reaches it, possibly hours in. ``build-sft`` only estimates token counts; this
module measures every row with verl's own dataset class (:class:`GuardSFTDataset`: the same chat
template, the same per-turn tokenization, the same image tokens, the same processor settings as
training) before the run, reports how many rows of each modality are over the limit, and writes a
copy that fits (atomically) in one of two ways:

- drop the overlong rows (the default), or
- ``truncate_prompt``: shorten the *prompt side* of an overlong row (the request and response texts
  of the user turn, longest first, from their end, by tokens) until the row fits. The assistant turn
  (reasoning and verdict) is never touched, and neither are the instruction, the transcript layout or
  the images. A row that cannot fit even with empty texts (images plus target too long) is dropped.
  This is the R-SFT counterpart of LLaMA-Factory's ``cutoff_len``, which also cuts the prompt before
  the target, but it keeps the transcript well-formed.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from data_prep.atomic import atomic_output
from data_prep.prompt import build_transcript
from data_prep.transcript import HUMAN_HEADER, parse_transcript

#: The paper's R-SFT max length (guardreasoner_vl_sft.yaml: data.max_length).
DEFAULT_MAX_LENGTH = 2048
#: How many times an overlong row is re-cut (with a growing margin) and re-measured: retokenizing a cut
#: text can merge or split a token at the cut, so the first cut may miss by a token or two.
TRUNCATION_ROUNDS = 3
#: Extra tokens cut per round beyond the measured excess.
TRUNCATION_MARGIN = 4
#: Position of the user turn (the transcript) and of the target in an SFT row's ``messages``.
USER, ASSISTANT = 1, 2


@dataclass
class LengthReport:
    """Token length of every row (``None`` where verl could not build the row) and the verdict."""

    max_length: int
    lengths: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    modalities: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)
    #: row index -> new messages, for the rows whose prompt side was truncated to fit
    truncated: dict = field(default_factory=dict)
    #: row index -> length after truncation
    truncated_lengths: dict = field(default_factory=dict)
    #: row index -> why the row could not be truncated to fit
    untruncatable: dict = field(default_factory=dict)

    @property
    def overlong(self) -> list[int]:
        return [i for i, n in enumerate(self.lengths) if n is not None and n > self.max_length]

    @property
    def dropped(self) -> list[int]:
        """Rows a run would fail on and that were not truncated to fit: too long, or not buildable at all."""
        return sorted((set(self.overlong) - set(self.truncated)) | set(self.errors))

    def by_modality(self) -> dict[str, dict[str, Any]]:
        """Per modality: rows, rows over ``max_length``, and their share (the count of a modality / its rows)."""
        rows = Counter(self.modalities)
        over = Counter(self.modalities[i] for i in self.overlong)
        return {
            modality: {"rows": rows[modality], "overlong": over[modality], "share": over[modality] / rows[modality]}
            for modality in sorted(rows)
        }

    def summary(self) -> dict:
        measured = sorted(n for n in self.lengths if n is not None)

        def pct(q: float) -> Optional[int]:
            return measured[min(len(measured) - 1, int(q * len(measured)))] if measured else None

        return {
            "rows": len(self.lengths),
            "max_length": self.max_length,
            "overlong": len(self.overlong),
            "overlong_share": len(self.overlong) / len(self.lengths) if self.lengths else 0.0,
            "by_modality": self.by_modality(),
            "errors": len(self.errors),
            "truncated": len(self.truncated),
            "length_p50": pct(0.5),
            "length_p99": pct(0.99),
            "length_max": measured[-1] if measured else None,
            "dropped_ids": [self.ids[i] for i in self.dropped],
            "truncated_ids": {self.ids[i]: [self.lengths[i], n] for i, n in sorted(self.truncated_lengths.items())},
            "error_reasons": {self.ids[i]: reason for i, reason in self.errors.items()},
            "untruncatable_reasons": {self.ids[i]: reason for i, reason in self.untruncatable.items()},
        }


class _Measurer:
    """verl's SFT dataset on a parquet, built as training builds it, without a length limit."""

    def __init__(self, model_path: Path) -> None:
        from verl.utils import hf_processor, hf_tokenizer

        self.tokenizer = hf_tokenizer(str(model_path))
        self.processor = hf_processor(str(model_path))

    def dataset(self, parquet: Path) -> Any:
        from omegaconf import OmegaConf

        from recipe.guardreasoner_vl.sft_dataset import GuardSFTDataset

        # No limit while measuring: every row is built whole and its true length read off.
        config = OmegaConf.create({"pad_mode": "no_padding", "max_length": 2**31 - 1, "truncation": "error"})
        return GuardSFTDataset(parquet_files=str(parquet), tokenizer=self.tokenizer, config=config, processor=self.processor)


def _length(dataset: Any, index: int) -> int:
    return int(len(dataset[index]["input_ids"]))


def measure(
    parquet: Path,
    model_path: Path,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    truncate_prompt: bool = False,
    progress: Optional[Callable[[int], None]] = None,
) -> LengthReport:
    """Token length of every row of an SFT parquet, as ``GuardSFTDataset`` builds it for training.

    With ``truncate_prompt`` the overlong rows are also cut on the prompt side until they fit
    (:attr:`LengthReport.truncated`; see the module docstring); the others are left to be dropped.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    parquet, model_path = Path(parquet), Path(model_path)
    if not parquet.is_file():
        raise FileNotFoundError(f"{parquet}: no such file")
    measurer = _Measurer(model_path)
    dataset = measurer.dataset(parquet)
    frame = dataset.dataframe
    ids = frame["id"].tolist() if "id" in frame else [str(i) for i in range(len(dataset))]
    modalities = frame["modality"].tolist() if "modality" in frame else ["unknown"] * len(dataset)
    report = LengthReport(max_length=max_length, ids=[str(i) for i in ids], modalities=[str(m) for m in modalities])
    for index in range(len(dataset)):
        try:
            report.lengths.append(_length(dataset, index))
        except Exception as err:  # noqa: BLE001 - a row verl cannot build is reported, never fatal here
            report.lengths.append(None)
            report.errors[index] = f"{type(err).__name__}: {err}"[:300]
        if progress:
            progress(1)
    if truncate_prompt and report.overlong:
        _truncate_overlong(report, parquet, measurer)
    return report


def shorten_prompt(transcript: str, cut_tokens: int, tokenizer: Any) -> str:
    """``transcript`` with ``cut_tokens`` tokens fewer in its request/response texts (longest first, from the end).

    Raises ``ValueError`` when the texts hold fewer tokens than that, or when the transcript is not a
    single ``Human user: … AI assistant: …`` block (a concatenation has two: no single cut keeps it valid).
    """
    if transcript.count(HUMAN_HEADER) != 1:
        raise ValueError("the transcript has more than one 'Human user:' block")
    parsed = parse_transcript(transcript)
    texts = {"request": parsed.request, "response": parsed.response or ""}
    tokens = {slot: tokenizer.encode(text, add_special_tokens=False) for slot, text in texts.items()}
    available = sum(len(t) for t in tokens.values())
    if cut_tokens > available:
        raise ValueError(f"needs {cut_tokens} tokens cut but the request and response hold only {available}")
    remaining = cut_tokens
    while remaining > 0:  # cut the longer text until both are equal, then alternate
        slot = max(tokens, key=lambda s: len(tokens[s]))
        other = len(tokens["response" if slot == "request" else "request"])
        step = max(1, min(remaining, len(tokens[slot]) - other))
        tokens[slot] = tokens[slot][: len(tokens[slot]) - step]
        remaining -= step
    # a cut inside a multi-byte character decodes to U+FFFD: drop it
    request = tokenizer.decode(tokens["request"]).rstrip("\ufffd").strip()
    response = tokenizer.decode(tokens["response"]).rstrip("\ufffd").strip() if parsed.response is not None else None
    return build_transcript(request, response, has_image=parsed.num_images > 0)


def _with_messages(table: Any, rows: list[int], messages: list[list[dict]]) -> Any:
    """The ``rows`` of ``table`` with their ``messages`` replaced (same schema, so verl reads them alike)."""
    import pyarrow as pa

    subset = table.take(pa.array(rows, type=pa.int64()))
    column = subset.schema.get_field_index("messages")
    field_ = subset.schema.field(column)
    return subset.set_column(column, field_, pa.array(messages, type=field_.type))


def _truncate_overlong(report: LengthReport, parquet: Path, measurer: _Measurer) -> None:
    """Cut the prompt side of every overlong row until verl measures it within ``max_length``."""
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    original = table.column("messages")
    pending = {i: report.lengths[i] - report.max_length for i in report.overlong}
    with tempfile.TemporaryDirectory(prefix="sft-lengths-") as tmp:
        for round_ in range(TRUNCATION_ROUNDS):
            candidates: dict[int, list] = {}
            for index, excess in sorted(pending.items()):
                messages = original[index].as_py()
                try:
                    messages[USER]["content"] = shorten_prompt(
                        messages[USER]["content"], excess + TRUNCATION_MARGIN * (round_ + 1), measurer.tokenizer
                    )
                except ValueError as err:
                    report.untruncatable[index] = str(err)
                    continue
                candidates[index] = messages
            if not candidates:
                break
            order = sorted(candidates)
            path = Path(tmp) / f"round{round_}.parquet"
            pq.write_table(_with_messages(table, order, [candidates[i] for i in order]), path)
            dataset = measurer.dataset(path)
            pending = {}
            for position, index in enumerate(order):
                length = _length(dataset, position)
                if length <= report.max_length:
                    report.truncated[index] = candidates[index]
                    report.truncated_lengths[index] = length
                else:  # retokenizing at the cut missed by a token or two: cut that much more next round
                    pending[index] = report.lengths[index] - report.max_length + (length - report.max_length)
        for index in pending:
            report.untruncatable.setdefault(index, f"still over {report.max_length} tokens after {TRUNCATION_ROUNDS} cuts")


def write_fitted(parquet: Path, output: Path, report: LengthReport) -> int:
    """Copy ``parquet`` to ``output`` with the truncated rows replaced and the dropped rows left out (atomic).

    Returns the number of rows written.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    keep = sorted(set(range(table.num_rows)) - set(report.dropped))
    messages = table.column("messages")
    fitted = _with_messages(table, keep, [report.truncated.get(i) or messages[i].as_py() for i in keep])
    with atomic_output(Path(output)) as tmp:
        pq.write_table(fitted, tmp)
    return len(keep)

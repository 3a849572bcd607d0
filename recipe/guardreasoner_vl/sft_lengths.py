"""Measure R-SFT rows exactly as verl will tokenize them, and drop the ones over ``max_length``.

The R-SFT config keeps verl's ``truncation: error``: cutting a row would train on a reasoning
trace without its verdict. Then one row longer than ``data.max_length`` stops the run when the
data loader reaches it, possibly hours in. ``build-sft`` only estimates token counts; this
command measures every row with verl's own dataset class (:class:`GuardSFTDataset`: the same chat
template, the same per-turn tokenization, the same image tokens, the same processor settings as
training) before the run, reports the length distribution, and with ``-o`` writes a copy without
the overlong rows (atomically; the dropped ids are listed in the report).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from data_prep.atomic import atomic_output

#: The paper's R-SFT max length (guardreasoner_vl_sft.yaml: data.max_length).
DEFAULT_MAX_LENGTH = 2048


@dataclass
class LengthReport:
    """Token length of every row (``None`` where verl could not build the row) and the verdict."""

    max_length: int
    lengths: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)

    @property
    def overlong(self) -> list[int]:
        return [i for i, n in enumerate(self.lengths) if n is not None and n > self.max_length]

    @property
    def dropped(self) -> list[int]:
        """Rows a run would fail on: too long, or not buildable at all."""
        return sorted(set(self.overlong) | set(self.errors))

    def summary(self) -> dict:
        measured = sorted(n for n in self.lengths if n is not None)

        def pct(q: float) -> Optional[int]:
            return measured[min(len(measured) - 1, int(q * len(measured)))] if measured else None

        return {
            "rows": len(self.lengths),
            "max_length": self.max_length,
            "overlong": len(self.overlong),
            "errors": len(self.errors),
            "length_p50": pct(0.5),
            "length_p99": pct(0.99),
            "length_max": measured[-1] if measured else None,
            "dropped_ids": [self.ids[i] for i in self.dropped],
            "error_reasons": {self.ids[i]: reason for i, reason in self.errors.items()},
        }


def measure(
    parquet: Path,
    model_path: Path,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    progress: Optional[Callable[[int], None]] = None,
) -> LengthReport:
    """Token length of every row of an SFT parquet, as ``GuardSFTDataset`` builds it for training."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    from omegaconf import OmegaConf
    from verl.utils import hf_processor, hf_tokenizer

    from recipe.guardreasoner_vl.sft_dataset import GuardSFTDataset

    parquet, model_path = Path(parquet), Path(model_path)
    if not parquet.is_file():
        raise FileNotFoundError(f"{parquet}: no such file")
    tokenizer = hf_tokenizer(str(model_path))
    processor = hf_processor(str(model_path))
    # No limit while measuring: every row is built whole and its true length read off.
    config = OmegaConf.create({"pad_mode": "no_padding", "max_length": 2**31 - 1, "truncation": "error"})
    dataset = GuardSFTDataset(parquet_files=str(parquet), tokenizer=tokenizer, config=config, processor=processor)
    ids = dataset.dataframe["id"].tolist() if "id" in dataset.dataframe else [str(i) for i in range(len(dataset))]
    report = LengthReport(max_length=max_length, ids=[str(i) for i in ids])
    for index in range(len(dataset)):
        try:
            report.lengths.append(int(len(dataset[index]["input_ids"])))
        except Exception as err:  # noqa: BLE001 - a row verl cannot build is reported, never fatal here
            report.lengths.append(None)
            report.errors[index] = f"{type(err).__name__}: {err}"[:300]
        if progress:
            progress(1)
    return report


def write_without(parquet: Path, output: Path, drop: list[int]) -> int:
    """Copy ``parquet`` to ``output`` without the rows at ``drop`` (atomic); returns rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    keep = sorted(set(range(table.num_rows)) - set(drop))
    with atomic_output(Path(output)) as tmp:
        pq.write_table(table.take(pa.array(keep, type=pa.int64())), tmp)
    return len(keep)

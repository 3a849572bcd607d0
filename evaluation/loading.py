"""Load the benchmarks to score from the evaluation files ``build-eval`` writes.

``build-eval`` turns each released benchmark file into ``<data dir>/<Stem>.jsonl``, a records JSONL
(:mod:`data_prep.records_io`) whose rows carry the benchmark's display name, the tasks they are
scored on and their images. :func:`load_benchmark` reads the file holding one
:class:`~data_prep.benchmarks.BenchmarkSpec` and checks it before any model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from data_prep.benchmarks import RESPONSE, BenchmarkSpec
from data_prep.errors import ErrorPolicy
from data_prep.record import TASKS_META_KEY, UNLABELLED_META_KEY, GuardRecord
from data_prep.records_io import read_records

#: Extension of the evaluation files; the released files (``.json``) need ``build-eval`` first.
EVAL_SUFFIX = ".jsonl"


def eval_file(spec: BenchmarkSpec, data_dir: Union[str, Path]) -> Path:
    """``<data_dir>/<spec.file>.jsonl``; a clear error when it is missing or ``data_dir`` holds the raw files."""
    data_dir = Path(data_dir)
    path = data_dir / f"{spec.file}{EVAL_SUFFIX}"
    if path.is_file():
        return path
    if (data_dir / f"{spec.file}.json").is_file():
        raise FileNotFoundError(
            f"benchmark {spec.key}: {data_dir} holds the released file {spec.file}.json, not an evaluation file; "
            f"convert the folder first: guardreasoner-vl build-eval {data_dir} -o EVAL_DIR"
        )
    raise FileNotFoundError(f"benchmark {spec.key}: no {path.name} in {data_dir} (write it with guardreasoner-vl build-eval)")


def load_benchmark(
    spec: BenchmarkSpec, data_dir: Union[str, Path], *, allow_size_mismatch: bool = False
) -> list[GuardRecord]:
    """Read one benchmark/task pair and check it against the table.

    Checks: every row parses, belongs to ``spec`` and carries a label for its task; ids are unique;
    response rows have a response; the row count is the paper's (unless ``allow_size_mismatch``,
    for subsets and mini benchmarks).
    """
    path = eval_file(spec, data_dir)
    records = list(read_records(path, policy=ErrorPolicy("raise")))
    slot = "response" if spec.task == RESPONSE else "request"
    seen: set[str] = set()
    for record in records:
        where = f"benchmark {spec.key}: row {record.id!r} in {path}"
        if record.source != spec.name:
            raise ValueError(f"{where} belongs to {record.source!r}")
        if spec.task not in record.meta.get(TASKS_META_KEY, ()):
            raise ValueError(f"{where} is not scored on the {spec.task} task (tasks {record.meta.get(TASKS_META_KEY)})")
        if slot in record.meta.get(UNLABELLED_META_KEY, ()):
            raise ValueError(f"{where} has no {slot} label")
        if spec.task == RESPONSE and not record.has_response:
            raise ValueError(f"{where} has no response to score")
        if record.id in seen:
            raise ValueError(f"benchmark {spec.key}: duplicate id {record.id!r} in {path}")
        seen.add(record.id)
    if not records:
        raise ValueError(f"benchmark {spec.key}: {path} has no rows")
    if not allow_size_mismatch and len(records) != spec.size:
        raise ValueError(
            f"benchmark {spec.key}: {path} has {len(records)} rows, the paper's set has {spec.size} "
            "(pass --allow-size-mismatch for subsets or mini benchmarks)"
        )
    return records

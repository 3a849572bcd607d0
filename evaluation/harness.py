"""Generation over the benchmarks, resumable, then scoring: the engine behind ``evaluate``.

Prompts are built only by :func:`inference.request_from_record` (i.e.
:mod:`data_prep.prompt`); outputs are stored raw and parsed only at scoring time, so a file of
generations can be re-scored after a grammar fix without generating again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from data_prep.record import GuardRecord
from data_prep.benchmarks import PROMPT, BenchmarkSpec
from evaluation.generations import GenerationLog, read_generations, row_key
from inference.base import DEFAULT_MAX_NEW_TOKENS, InferenceBackend, request_from_record


def gold_label(record: GuardRecord, task: str) -> str:
    """The label scored for ``task``: request label (prompt) or response label (response)."""
    return record.request_label if task == PROMPT else record.response_label


def pending(
    work: Sequence[tuple[BenchmarkSpec, list[GuardRecord]]], done: set
) -> list[tuple[BenchmarkSpec, GuardRecord]]:
    """The ``(spec, record)`` pairs still to generate, in benchmark order."""
    return [(spec, r) for spec, records in work for r in records if (spec.task, spec.name, r.id) not in done]


def generate(
    backend: InferenceBackend,
    work: Sequence[tuple[BenchmarkSpec, list[GuardRecord]]],
    log_path: Union[str, Path],
    *,
    batch_size: int = 32,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: Optional[int] = 0,
    progress: Optional[Callable[[int], None]] = None,
    limit_batches: Optional[int] = None,
) -> dict:
    """Generate every sample not yet in ``log_path`` and append it there, batch by batch.

    Returns counts: ``done_before`` (skipped on resume), ``generated``, ``total``.
    ``progress(k)`` is called after each batch with the number of samples it finished.
    ``limit_batches`` stops after that many batches (used to test interruption).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    existing = read_generations(log_path, repair=True)
    done = {row_key(r) for r in existing}
    todo = pending(work, done)
    total = sum(len(records) for _, records in work)
    generated = 0
    with GenerationLog(log_path) as log:
        for b, start in enumerate(range(0, len(todo), batch_size)):
            if limit_batches is not None and b >= limit_batches:
                break
            chunk = todo[start : start + batch_size]
            requests = [request_from_record(record) for _, record in chunk]
            # Seeded by position in the pending list: a run is reproducible; with sampling
            # (temperature > 0) a resumed run draws different samples than an uninterrupted one
            # would. Greedy decoding (the paper's setting) is unaffected.
            outputs = backend.generate(
                requests,
                n=1,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                seed=None if seed is None else seed + start,
            )
            if len(outputs) != len(chunk):
                raise RuntimeError(f"backend returned {len(outputs)} results for {len(chunk)} requests")
            log.write(
                {
                    "benchmark": spec.name,
                    "task": spec.task,
                    "id": record.id,
                    "modality": record.modality,
                    "label": gold_label(record, spec.task),
                    "output": gens[0].text,
                    "num_tokens": gens[0].num_tokens,
                    "finish_reason": gens[0].finish_reason,
                }
                for (spec, record), gens in zip(chunk, outputs)
            )
            generated += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return {"done_before": total - len(todo), "generated": generated, "total": total}

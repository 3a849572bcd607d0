"""Hard-sample mining by rejection sampling (docs/design.md §6).

The R-SFT model answers each row ``k`` times (temperature 1.0, top_p 0.95). A row is *hard* when
no answer got both labels right; a parse failure counts as wrong (never as "the opposite label",
the released code's bug). Hard rows form the RL pool: GRPO learns nothing from prompts every
sample already solves.

Every answer's ``finish_reason`` is kept: an answer cut at the token limit is usually unparseable,
so it counts as wrong like any parse failure, but it is counted apart (``truncated_outputs``) so a
too-small ``max_new_tokens`` shows. A row whose prompt the backend refused as too long for the
model's context (vLLM offline) is recorded as ``refused``, neither hard nor kept.

Seeds: the rows sent to the backend so far in this run stride the seed by ``k`` per row
(:func:`inference.base.request_seed`), so no two samples of a run share a seed.

Resumable: each finished row is appended to ``results.jsonl`` (one line per id, flushed and
fsynced per batch); on restart, ids already there are not generated again, and a line cut short
by a crash is dropped. The released code also kept every image-only row unfiltered: that is
``keep_all_modalities=("image",)``, off by default.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from data_prep.atomic import atomic_output
from data_prep.record import MODALITIES, GuardRecord
from data_prep.records_io import RecordWriter
from inference.base import FINISH_LENGTH, FINISH_PROMPT_TOO_LONG, request_from_record, request_seed
from rewards.grammar import NO_RESPONSE, UNHARMFUL, parse_verdict

#: docs/design.md §6: k samples per row at temperature 1.0, top_p 0.95.
DEFAULT_K = 4
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 0.95
DEFAULT_MAX_NEW_TOKENS = 4096
DEFAULT_BATCH_SIZE = 16


def _scored(label: Optional[str]) -> Optional[str]:
    """``none`` counts as unharmful when scoring (docs/design.md §2)."""
    return UNHARMFUL if label == NO_RESPONSE else label


def is_correct(text: str, record: GuardRecord) -> bool:
    """Both labels read from ``text`` and right; an unreadable output is wrong."""
    verdict = parse_verdict(text)
    if verdict.request is None or verdict.response is None:
        return False
    return (verdict.request == record.request_label
            and _scored(verdict.response) == _scored(record.response_label))


@dataclass
class MiningSummary:
    rows: int = 0
    generated: int = 0
    resumed: int = 0
    kept: int = 0
    by_modality: dict = field(default_factory=lambda: defaultdict(Counter))

    def report(self) -> dict:
        per = {}
        for modality in MODALITIES:
            c = self.by_modality.get(modality, Counter())
            mined = c["mined"]
            per[modality] = {
                "rows": c["rows"], "mined": mined, "hard": c["hard"], "kept": c["kept"],
                "kept_unfiltered": c["kept_unfiltered"], "refused": c["refused"],
                "outputs": c["outputs"], "truncated_outputs": c["truncated"],
                "hard_rate": round(c["hard"] / mined, 4) if mined else None,
            }
        total = lambda key: sum(c[key] for c in self.by_modality.values())  # noqa: E731
        return {"rows": self.rows, "generated_now": self.generated, "resumed": self.resumed, "kept": self.kept,
                "refused": total("refused"), "outputs": total("outputs"), "truncated_outputs": total("truncated"),
                "by_modality": per}  # fmt: skip


def result_row(record: GuardRecord, generations: Sequence[Any]) -> dict:
    """The results line of one mined row (``generations``: its k ``inference.Generation``)."""
    row = {"id": record.id, "modality": record.modality, "source": record.source, "k": len(generations),
           "finish_reasons": [g.finish_reason for g in generations],
           "n_truncated": sum(g.finish_reason == FINISH_LENGTH for g in generations)}  # fmt: skip
    if any(g.finish_reason == FINISH_PROMPT_TOO_LONG for g in generations):
        return {**row, "refused": True, "hard": None, "kept": False}
    verdicts = [parse_verdict(g.text) for g in generations]
    n_correct = sum(is_correct(g.text, record) for g in generations)
    hard = n_correct == 0
    return {**row, "n_correct": n_correct,
            "n_parse_failures": sum(not v.parsed for v in verdicts),
            "predictions": [[v.request, v.response] for v in verdicts],
            "num_tokens": [g.num_tokens for g in generations], "hard": hard, "kept": hard}  # fmt: skip


def load_results(path: Path) -> dict[str, dict]:
    """Finished rows of a results JSONL by id; a truncated last line (crash mid-write) is cut off."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # partial last line: drop it so appends start on a clean line
        with open(path, "r+b") as handle:
            handle.truncate(end)
    results = {}
    for line_no, line in enumerate(data[:end].decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {line_no} is not valid JSON ({err}); fix or remove the file") from None
            results[row["id"]] = row
    return results


def mine(
    records: Iterable[GuardRecord],
    backend: Any,
    *,
    results_path: Path,
    pool_path: Path,
    report_path: Optional[Path] = None,
    k: int = DEFAULT_K,
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    seed: Optional[int] = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_all_modalities: Sequence[str] = (),
    make_request: Optional[Callable[[GuardRecord], Any]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> MiningSummary:
    """Mine hard rows from ``records`` with ``backend`` (an ``InferenceBackend``).

    Writes ``results_path`` (appended, one line per id: k, correct count, parse failures, the
    labels each answer gave, hard, kept), ``pool_path`` (records JSONL of the kept rows, atomic) and
    ``report_path`` (per-modality counts). ``make_request`` defaults to the inference package's
    ``request_from_record``. ``progress(n)`` is called with the number of rows finished.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    unknown = set(keep_all_modalities) - set(MODALITIES)
    if unknown:
        raise ValueError(f"unknown modality in keep_all_modalities: {sorted(unknown)}; expected {MODALITIES}")
    make_request = make_request or request_from_record
    results_path, pool_path = Path(results_path), Path(pool_path)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    done = load_results(results_path)
    for row in done.values():
        if row.get("k") not in (None, k) and not row.get("unfiltered"):
            raise ValueError(f"{results_path} was written with k={row['k']}, not k={k}; use a new results file")
    summary = MiningSummary()
    batch: list[GuardRecord] = []
    seen: set[str] = set()
    sent = 0  # rows sent to the backend in this run: the seed offset of the next batch

    with open(results_path, "a", encoding="utf-8") as results, atomic_output(pool_path) as pool_tmp, \
            open(pool_tmp, "w", encoding="utf-8") as pool_handle:
        pool = RecordWriter(pool_handle, pool_path.parent)

        def finish(record: GuardRecord, row: dict) -> None:
            counts = summary.by_modality[record.modality]
            counts["rows"] += 1
            counts["mined"] += not row.get("unfiltered")
            counts["hard"] += bool(row.get("hard"))
            counts["kept"] += bool(row["kept"])
            counts["kept_unfiltered"] += bool(row.get("unfiltered"))
            counts["refused"] += bool(row.get("refused"))
            counts["outputs"] += 0 if row.get("refused") else len(row.get("finish_reasons") or [])
            counts["truncated"] += row.get("n_truncated") or 0
            summary.rows += 1
            if row["kept"]:
                summary.kept += 1
                pool.write(record)
            if progress:
                progress(1)

        def run_batch() -> None:
            nonlocal sent
            requests = [make_request(r) for r in batch]
            outputs = backend.generate(requests, n=k, temperature=temperature, top_p=top_p,
                                       max_new_tokens=max_new_tokens, seed=request_seed(seed, sent, k))  # fmt: skip
            sent += len(batch)
            if len(outputs) != len(batch):
                raise RuntimeError(f"backend returned {len(outputs)} results for {len(batch)} requests")
            rows = [(record, result_row(record, generations)) for record, generations in zip(batch, outputs)]
            for _, row in rows:
                results.write(json.dumps(row, ensure_ascii=False) + "\n")
            results.flush()
            os.fsync(results.fileno())
            summary.generated += len(rows)
            for record, row in rows:
                finish(record, row)
            batch.clear()

        for record in records:
            if record.id in seen:
                raise ValueError(f"duplicate id {record.id!r} in the mining input")
            seen.add(record.id)
            previous = done.get(record.id)
            # Reuse a finished row only if it was decided under the same keep-all setting: a row kept
            # unfiltered by an earlier run with --keep-all-modality must be mined now, and vice versa.
            if previous is not None and bool(previous.get("unfiltered")) == (record.modality in keep_all_modalities):
                summary.resumed += 1
                finish(record, previous)
                continue
            if record.modality in keep_all_modalities:
                row = {"id": record.id, "modality": record.modality, "source": record.source, "k": 0,
                       "unfiltered": True, "hard": None, "kept": True}
                results.write(json.dumps(row) + "\n")
                finish(record, row)
                continue
            batch.append(record)
            if len(batch) >= batch_size:
                run_batch()
        if batch:
            run_batch()
        results.flush()
        os.fsync(results.fileno())

    if report_path is not None:
        report = summary.report()
        report.update({"k": k, "temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens,
                       "seed": seed, "keep_all_modalities": list(keep_all_modalities)})
        with atomic_output(Path(report_path)) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return summary

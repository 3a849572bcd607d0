"""Evaluation harness overhead without generation: prompt building, parsing, metrics, bootstrap.

Builds a synthetic set of --samples (default 30,000, about the size of all 14 benchmark/task pairs:
24,683 at the registry's sizes, scaled up here), each benchmark's share as in the registry; fakes a
guard output per sample (80% right, 15% wrong, 5% unparseable), then times each harness stage:

- prompts: ``request_from_record`` (``data_prep.prompt``) for every sample;
- scoring: ``score_rows`` = parsing every output with ``parse_verdict``, confusion counts, F1,
  1,000-resample bootstrap CIs per benchmark and for the 4 averages;
- reports: results JSON + CSV + markdown (charts excluded: matplotlib start-up is not harness work).

Goal: the whole overhead under 2 s for 30,000 samples. Prints the figures and writes JSON.

    .venv/bin/python benchmarks/bench_eval.py [--samples 30000] [--seed 0] [--out outputs/bench_eval.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from data_prep.record import GuardRecord
from data_prep.benchmarks import BENCHMARKS, PROMPT
from evaluation.report import write_csv, write_json, write_markdown
from evaluation.scoring import score_rows
from inference import request_from_record
from rewards.grammar import format_output

REASONING = "\n".join(f"## Reasoning Step {i}\nThe request asks about topic {i}; it is assessed carefully." for i in range(1, 5))


def synthetic(samples: int, seed: int) -> tuple[list[tuple], list[dict]]:
    """Records and fake generation rows, benchmark sizes scaled to ``samples`` in total."""
    rng = np.random.default_rng(seed)
    total = sum(s.size for s in BENCHMARKS)
    records, rows = [], []
    for spec in BENCHMARKS:
        n = round(spec.size * samples / total)
        for i in range(n):
            harmful = bool(rng.random() < 0.4)
            gold = "harmful" if harmful else "unharmful"
            images = ("unused.png",) if spec.modality != "text" else ()
            request = "" if spec.modality == "image" else f"Request number {i} about a topic, with some detail."
            response = None if spec.task == PROMPT and i % 2 else f"Response {i}: a reply of moderate length."
            resp_label = "none" if response is None else (gold if spec.task != PROMPT else "unharmful")
            req_label = gold if spec.task == PROMPT else "unharmful"
            records.append(GuardRecord(id=f"{spec.file}-{i}", source=spec.name, request=request, request_label=req_label,
                                       response=response, response_label=resp_label, images=images))  # fmt: skip
            r = rng.random()
            if r < 0.05:
                output = "an output without the result grammar"
            else:
                said = gold if r < 0.85 else ("unharmful" if harmful else "harmful")
                output = format_output(REASONING, said, None) if spec.task == PROMPT else format_output(REASONING, "unharmful", said)
            rows.append({"benchmark": spec.name, "task": spec.task, "id": f"{spec.file}-{i}", "label": gold,
                         "output": output, "num_tokens": 200})  # fmt: skip
    return records, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_eval.json"), help="figures as JSON")
    args = parser.parse_args()

    records, rows = synthetic(args.samples, args.seed)
    t0 = time.perf_counter()
    requests = [request_from_record(r) for r in records]
    t_prompts = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = score_rows(rows, seed=args.seed, n_resamples=args.resamples)
    t_scoring = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_json(results, Path(tmp) / "r.json")
        write_csv(results, Path(tmp) / "r.csv")
        write_markdown(results, Path(tmp) / "r.md")
        t_reports = time.perf_counter() - t0

    total = t_prompts + t_scoring + t_reports
    figures = {
        "samples": len(rows),
        "benchmarks": len(results.scores),
        "bootstrap_resamples": args.resamples,
        "seed": args.seed,
        "prompts_s": round(t_prompts, 4),
        "scoring_s": round(t_scoring, 4),
        "reports_s": round(t_reports, 4),
        "total_s": round(total, 4),
        "samples_per_s": round(len(rows) / total),
        "goal_s": 2.0,
        "goal_met": total < 2.0,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "device": "cpu",
    }
    assert len(requests) == len(rows)
    for key in ("samples", "prompts_s", "scoring_s", "reports_s", "total_s", "samples_per_s", "goal_met"):
        print(f"{key:>16}: {figures[key]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

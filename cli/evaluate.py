"""Generate guard outputs on the benchmarks, then score them (the paper's F1 tables).

Generations are appended to OUT_DIR/generations.jsonl and flushed batch by batch: run the same
command again after an interruption and it resumes where it stopped. Then the whole file is scored
(see `guardreasoner-vl score`) and OUT_DIR gets results.json, results.csv, results.md and
f1_{prompt,response}.png.

Benchmarks are read from --data-dir, the folder `guardreasoner-vl build-eval` writes (one
STEM.jsonl per released benchmark file; docs/evaluation.md lists the 14 benchmark/task pairs and
their expected sizes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from cli.options import (
    add_backend_arguments,
    add_scoring_arguments,
    backend_from_args,
    model_name,
)
from data_prep.benchmarks import select
from evaluation.generations import read_generations, row_key
from evaluation.harness import generate, pending
from evaluation.loading import load_benchmark
from evaluation.report import write_all
from evaluation.scoring import score_rows
from evaluation.summary import print_summary

#: Per-backend batch: small for transformers (padding cost), large for servers and vLLM (throughput).
DEFAULT_BATCH_SIZE = {"hf": 8, "openai": 64, "vllm": 512}
GENERATIONS_FILE = "generations.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True, help="evaluation files written by build-eval")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for generations and reports")
    parser.add_argument("--benchmarks", nargs="+", default=None, metavar="NAME",
                        help="display names (SPA-VL-Eval), file stems (SPA_VL_Eval) or task/name keys. "
                             "Default: all 14 pairs")  # fmt: skip
    parser.add_argument("--tasks", nargs="+", choices=("prompt", "response"), default=["prompt", "response"],
                        help="Default: prompt response")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples per generate call and per flush to the JSONL (an interruption loses at "
                             "most one batch). Default: hf 8, openai 64, vllm 512")  # fmt: skip
    parser.add_argument("--allow-size-mismatch", action="store_true",
                        help="accept benchmark files whose size differs from the paper's (subsets, mini benchmarks)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_arguments(parser)
    add_scoring_arguments(parser)
    parser.epilog = (
        "examples:\n"
        "  # CPU smoke run: tiny model on the bundled mini benchmarks\n"
        "  guardreasoner-vl make-tiny-model -o /tmp/tiny\n"
        "  guardreasoner-vl build-eval demo/sample_data/benchmarks -o /tmp/eval_data\n"
        "  guardreasoner-vl evaluate --model /tmp/tiny --data-dir /tmp/eval_data \\\n"
        "      -o /tmp/eval --allow-size-mismatch --max-new-tokens 32\n"
        "  # paper scale: a vLLM server (vllm serve yueliu1999/GuardReasoner-VL-7B)\n"
        "  guardreasoner-vl evaluate --backend openai --model yueliu1999/GuardReasoner-VL-7B \\\n"
        "      --data-dir data/benchmark -o runs/7b --concurrency 64"
    )


def run(args: argparse.Namespace) -> int:
    batch_size = DEFAULT_BATCH_SIZE[args.backend] if args.batch_size is None else args.batch_size
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if not args.data_dir.is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir} is not a folder")
    specs = select(args.benchmarks, args.tasks)
    # Load (and size-check) every benchmark before the model: a bad file fails in seconds.
    work = [
        (spec, load_benchmark(spec, args.data_dir, allow_size_mismatch=args.allow_size_mismatch))
        for spec in specs
    ]
    log_path = args.output / GENERATIONS_FILE
    done = {row_key(r) for r in read_generations(log_path)}
    todo = pending(work, done)
    total = sum(len(records) for _, records in work)
    print(f"{len(specs)} benchmark(s), {total} samples; {total - len(todo)} already in {log_path}, {len(todo)} to generate")
    if todo:
        backend = backend_from_args(args, batch_size=batch_size)
        with tqdm(total=total, initial=total - len(todo), unit="sample", disable=args.no_progress) as bar:
            generate(
                backend, work, log_path, batch_size=batch_size, max_new_tokens=args.max_new_tokens,
                temperature=args.temperature, top_p=args.top_p, seed=args.seed, progress=bar.update,
            )  # fmt: skip
    wanted = {(s.task, s.name) for s in specs}
    ids = {(s.task, s.name, r.id) for s, records in work for r in records}
    rows = [r for r in read_generations(log_path) if (r["task"], r["benchmark"]) in wanted and row_key(r) in ids]
    name = model_name(args)
    results = score_rows(
        rows, seed=args.seed, n_resamples=args.n_resamples, confidence=args.confidence,
        meta={"model": name, "backend": args.backend, "max_new_tokens": args.max_new_tokens,
              "temperature": args.temperature, "data_dir": str(args.data_dir)},
    )  # fmt: skip
    paths = write_all(results, args.output, model_name=name, charts=not args.no_charts)
    print_summary(results, paths)
    return 0

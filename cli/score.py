"""Score a generations JSONL (no generation): F1 per benchmark, weighted averages, 95% CIs.

Each line needs ``benchmark``, ``task`` (prompt|response), ``label`` (the gold label for that
task) and ``output`` (the raw guard output); ``num_tokens`` is used for mean output length when
present. Writes results.json, results.csv, results.md and f1_{prompt,response}.png to -o.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import add_scoring_arguments
from evaluation.generations import read_generations
from evaluation.report import write_all
from evaluation.scoring import score_rows
from evaluation.summary import print_summary



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("generations", type=Path, help="generations JSONL (as written by `evaluate`)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="folder for the reports. Default: next to the JSONL")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed. Default: 0")
    add_scoring_arguments(parser)
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl score runs/7b/generations.jsonl\n"
        "  guardreasoner-vl score gens.jsonl -o reports/ --model-name GuardReasoner-VL-7B --n-resamples 2000"
    )


def run(args: argparse.Namespace) -> int:
    if not args.generations.is_file():
        raise FileNotFoundError(f"generations file not found: {args.generations}")
    rows = read_generations(args.generations)
    name = args.model_name or args.generations.parent.name or "ours"
    results = score_rows(
        rows, seed=args.seed, n_resamples=args.n_resamples, confidence=args.confidence,
        meta={"generations": str(args.generations), "model": name},
    )  # fmt: skip
    out_dir = args.output or args.generations.parent
    paths = write_all(results, out_dir, model_name=name, charts=not args.no_charts)
    print_summary(results, paths)
    return 0

"""Hard-sample mining: k generations per row; keep rows where no generation got both labels right.

Resumable: rerun the same command and finished ids (in <output>/results.jsonl) are skipped.
Writes <output>/pool.jsonl (the kept rows, a records JSONL) and <output>/report.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.options import add_backend_arguments, add_input_arguments, backend_from_args, error_policy, iter_inputs, progress_bar
from data_prep.record import MODALITIES
from data_prep.writers import DEFAULT_MAX_PIXELS
from evaluation.mining import DEFAULT_BATCH_SIZE, DEFAULT_K, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, mine

EXAMPLES = """examples:
  guardreasoner-vl mine data/vltrain --backend vllm --model runs/rsft/ckpt -o runs/mine
  guardreasoner-vl mine data/vltrain --backend openai --model guard --base-url http://127.0.0.1:8000/v1 -o runs/mine
  guardreasoner-vl mine demo/sample_data/vltrain --backend hf --model /tmp/tiny -k 2 --max-new-tokens 16 -o /tmp/mine
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="results.jsonl, pool.jsonl, report.json")
    parser.add_argument("-k", type=int, default=DEFAULT_K, help=f"generations per row (default and paper: {DEFAULT_K})")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"rows per backend call; results are saved after each (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--keep-all-modality", action="append", default=[], choices=MODALITIES,
                        help="keep every row of this modality unfiltered (repeatable; off by default; the released code kept 'image')")
    # The evaluation commands' backend options, with mining's paper defaults (docs/design.md §6) and
    # build-rl's pixel budget, so rows are judged at the resolution RL trains on.
    add_backend_arguments(parser, temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P, max_pixels=DEFAULT_MAX_PIXELS)


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    out = args.output
    bar = progress_bar("mine")
    summary = mine(
        iter_inputs(args, policy), backend_from_args(args),
        results_path=out / "results.jsonl", pool_path=out / "pool.jsonl", report_path=out / "report.json",
        k=args.k, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        seed=args.seed, batch_size=args.batch_size, keep_all_modalities=tuple(args.keep_all_modality),
        progress=bar.update,
    )
    bar.close()
    report = summary.report()
    print(f"mining: {out}")
    print(f"  rows {summary.rows} (generated now {summary.generated}, resumed {summary.resumed}), "
          f"skipped {policy.num_skipped}" + (f" {dict(policy.skipped)}" if policy.skipped else ""))
    print(f"  kept {summary.kept} -> {out / 'pool.jsonl'}")
    if report["truncated_outputs"]:
        print(f"  answers cut at the token limit: {report['truncated_outputs']} of {report['outputs']} "
              "(counted as wrong; raise --max-new-tokens if that is many)")  # fmt: skip
    if report["refused"]:
        print(f"  rows refused, prompt too long for the model's context: {report['refused']} (not kept)")
    print(f"  by modality: {json.dumps(report['by_modality'])}")
    return 0

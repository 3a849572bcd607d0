"""Hard-sample mining: k generations per row; keep rows where no generation got both labels right.

Resumable: rerun the same command and finished ids (in <output-dir>/results.jsonl) are skipped.
Writes <output-dir>/pool.jsonl (the kept rows, a records JSONL) and <output-dir>/report.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_prep.commands._common import add_input_arguments, error_policy, iter_inputs, progress_bar
from data_prep.mining import (
    DEFAULT_BATCH_SIZE, DEFAULT_K, DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, mine,
)
from data_prep.record import MODALITIES
from data_prep.writers import DEFAULT_MAX_PIXELS

HELP = "hard-sample mining with k generations per row"
EXAMPLES = """examples:
  guardreasoner-vl mine data/vltrain --backend vllm --model runs/rsft/ckpt -o runs/mine
  guardreasoner-vl mine data/vltrain --backend openai --model guard --base-url http://127.0.0.1:8000/v1 -o runs/mine
  guardreasoner-vl mine recipe/guardreasoner_vl/sample_data/vltrain --backend hf --model /tmp/tiny -k 2 --max-new-tokens 16 -o /tmp/mine
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output-dir", type=Path, required=True, help="results.jsonl, pool.jsonl, report.json")
    parser.add_argument("--backend", default="hf", choices=("hf", "openai", "vllm"), help="inference backend (default: hf)")
    parser.add_argument("--model", required=True, help="model path (hf, vllm) or served model name (openai)")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (openai backend)")
    parser.add_argument("-k", type=int, default=DEFAULT_K, help=f"generations per row (default and paper: {DEFAULT_K})")
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                        help=f"sampling temperature (default and paper: {DEFAULT_TEMPERATURE})")
    parser.add_argument("--top-p", type=float, default=DEFAULT_TOP_P, help=f"top-p (default and paper: {DEFAULT_TOP_P})")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                        help=f"generation budget (default: {DEFAULT_MAX_NEW_TOKENS})")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"rows per backend call; results are saved after each (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="hf/vllm: per-image pixel budget, the same as build-rl's so rows are judged at the "
                             f"resolution RL trains on (default: {DEFAULT_MAX_PIXELS})")
    parser.add_argument("--keep-all-modality", action="append", default=[], choices=MODALITIES,
                        help="keep every row of this modality unfiltered (repeatable; off by default; the released code kept 'image')")


def _backend(args: argparse.Namespace):
    from recipe.guardreasoner_vl.inference import get_backend

    if args.backend == "openai":
        return get_backend("openai", model=args.model, base_url=args.base_url)
    if args.base_url:
        raise ValueError("--base-url is only for --backend openai")
    return get_backend(args.backend, model_path=args.model, max_pixels=args.max_pixels)


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    out = args.output_dir
    bar = progress_bar("mine")
    summary = mine(
        iter_inputs(args, policy), _backend(args),
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
    print(f"  by modality: {json.dumps(report['by_modality'])}")
    return 0

"""Sample the RL pool (12K by default) and split it train/val 80/20, seeded (docs/design.md §6)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from cli.options import add_input_arguments, error_policy, iter_inputs
from data_prep.records_io import write_records
from data_prep.split import DEFAULT_POOL_SIZE, DEFAULT_VAL_FRACTION, split_pool

EXAMPLES = """examples:
  guardreasoner-vl split runs/mine/pool.jsonl -o runs/split
  guardreasoner-vl split runs/mine/pool.jsonl -o runs/split --size 1000 --val-fraction 0.1 --seed 1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for train.jsonl and val.jsonl")
    parser.add_argument("--size", type=int, default=DEFAULT_POOL_SIZE,
                        help=f"rows sampled from the pool (default and paper: {DEFAULT_POOL_SIZE}; 0 = all)")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                        help=f"share of the sample for validation (default and paper: {DEFAULT_VAL_FRACTION})")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    pool = list(iter_inputs(args, policy))
    train, val = split_pool(pool, size=args.size or None, val_fraction=args.val_fraction, seed=args.seed)
    for name, part in (("train", train), ("val", val)):
        write_records(part, args.output / f"{name}.jsonl")
        print(f"{name}: {args.output / f'{name}.jsonl'} rows {len(part)} {dict(Counter(r.modality for r in part))}")
    print(f"pool rows {len(pool)}, skipped {policy.num_skipped}, sampled {len(train) + len(val)} (seed {args.seed})")
    return 0

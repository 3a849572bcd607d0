"""Write RL parquet for verl's RLHFDataset, optionally adding safety-aware concatenations.

Rows: prompt = [system instruction, user transcript with <image>], images = [{bytes, max_pixels,
min_pixels}], data_source per source, reward_model.ground_truth in the result grammar, and one
fixed extra_info schema on every row (see docs/data.md).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from cli.options import (
    add_image_arguments, add_input_arguments, error_policy, image_options, iter_inputs, print_summary, progress,
)
from data_prep.concat import DEFAULT_FRACTION, LAYOUTS, concatenate
from data_prep.writers import write_rl

EXAMPLES = """examples:
  guardreasoner-vl build-rl runs/split/train.jsonl -o data/rl/train.parquet --concat-fraction 0.2
  guardreasoner-vl build-rl runs/split/val.jsonl -o data/rl/val.parquet --split-name val
  guardreasoner-vl build-rl demo/sample_data/vltrain -o /tmp/rl.parquet --on-error skip
  guardreasoner-vl build-rl my.csv --map request=prompt,request_label=label -o /tmp/rl.parquet
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .parquet")
    parser.add_argument("--split-name", default="train", help="extra_info.split value (default: train)")
    parser.add_argument("--concat-fraction", type=float, default=0.0,
                        help=f"share of safety-aware concatenations in the output (default: 0; paper: {DEFAULT_FRACTION})")
    parser.add_argument("--concat-layout", default="horizontal", choices=LAYOUTS, help="image layout (default: horizontal)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the concatenation pairs (default: 0)")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    options = image_options(args)
    records = iter_inputs(args, policy)
    if args.concat_fraction > 0:
        originals = list(records)  # pairs are drawn over the whole set (records hold paths, not pixels)
        records = itertools.chain(originals, concatenate(originals, fraction=args.concat_fraction,
                                                         seed=args.seed, layout=args.concat_layout))
    summary = write_rl(progress(records, "build-rl"), args.output, split=args.split_name, options=options, policy=policy)
    print_summary(summary, title="RL parquet")
    return 0

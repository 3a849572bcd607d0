"""Write RL parquet for verl's RLHFDataset.

Rows: prompt = [system instruction, user transcript with <image>], images = [{bytes, max_pixels,
min_pixels}], data_source per source, reward_model.ground_truth in the result grammar, and one
fixed extra_info schema on every row (see docs/data.md). Safety-aware concatenations come from
`guardreasoner-vl concat`, run before this on the training records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import (
    add_image_arguments, add_input_arguments, error_policy, image_options, iter_inputs, print_summary, progress,
)
from data_prep.writers import write_rl

EXAMPLES = """examples:
  guardreasoner-vl concat runs/split/train.jsonl -o runs/concat/train.jsonl --fraction 0.2 --on-error skip
  guardreasoner-vl build-rl runs/concat/train.jsonl -o data/rl/train.parquet
  guardreasoner-vl build-rl runs/split/val.jsonl -o data/rl/val.parquet --split-name val
  guardreasoner-vl build-rl demo/sample_data/vltrain -o /tmp/rl.parquet --on-error skip
  guardreasoner-vl build-rl my.csv --map request=prompt,request_label=label -o /tmp/rl.parquet
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .parquet")
    parser.add_argument("--split-name", default="train", help="extra_info.split value (default: train)")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    options = image_options(args)
    records = iter_inputs(args, policy)
    summary = write_rl(progress(records, "build-rl"), args.output, split=args.split_name, options=options, policy=policy)
    print_summary(summary, title="RL parquet")
    return 0

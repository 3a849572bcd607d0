"""Write SFT parquet for verl's MultiTurnSFTDataset: messages = [system, user, assistant target], images.

Rows without a reasoning target, or whose target's labels disagree with the row's labels, are
errors (raise) or skipped and counted (--on-error skip). Images get the released R-SFT's budget by
default (max_pixels 589,824 = 768 x 768, min_pixels 1,024: LLaMA-Factory's defaults); then run
check-sft-lengths, which measures every row as verl will.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import (
    add_image_arguments, add_input_arguments, error_policy, image_options, iter_inputs, print_summary, progress,
)
from data_prep.writers import SFT_IMAGE_OPTIONS, write_sft

EXAMPLES = """examples:
  guardreasoner-vl build-sft demo/sample_data/vltrain -o data/sft/train.parquet
  guardreasoner-vl build-sft /data/GuardReasoner-VLTrain --image-root /data/GuardReasoner-VLTrain -o data/sft/train.parquet --on-error skip
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .parquet")
    add_image_arguments(parser, defaults=SFT_IMAGE_OPTIONS, why="the released R-SFT's, LLaMA-Factory's default")


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    summary = write_sft(progress(iter_inputs(args, policy), "build-sft"), args.output,
                        options=image_options(args), policy=policy)
    print_summary(summary, title="SFT parquet")
    return 0

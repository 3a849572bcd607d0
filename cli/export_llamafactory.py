"""Export a LLaMA-Factory sharegpt dataset (<name>.json + images/) and its dataset_info.json entry."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import (
    add_image_arguments, add_input_arguments, error_policy, image_options, iter_inputs, print_summary, progress,
)
from data_prep.writers import export_llamafactory

EXAMPLES = """examples:
  guardreasoner-vl export-llamafactory demo/sample_data/vltrain -o LLaMA-Factory/data
  guardreasoner-vl export-llamafactory train.jsonl -o LLaMA-Factory/data --name guardreasoner_vl_rsft
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="LLaMA-Factory data folder (dataset_info.json is created or updated there)")
    parser.add_argument("--name", default="guardreasoner_vl_train", help="dataset name (default: guardreasoner_vl_train)")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    summary = export_llamafactory(progress(iter_inputs(args, policy), "export"), args.output, name=args.name,
                                  options=image_options(args), policy=policy)
    print_summary(summary, title="LLaMA-Factory dataset")
    print(f"  dataset_info.json entry: {args.name!r} in {args.output / 'dataset_info.json'}")
    return 0

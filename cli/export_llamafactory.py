"""Export a LLaMA-Factory sharegpt dataset (<name>.json + images/), its dataset_info.json entry, and
<name>_sft.yaml: a LLaMA-Factory training config with the image budget (image_max_pixels /
image_min_pixels, where LLaMA-Factory reads it) and the paper's R-SFT settings, to run as
``llamafactory-cli train <output>/<name>_sft.yaml model_name_or_path=... output_dir=...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import (
    add_image_arguments, add_input_arguments, error_policy, image_options, iter_inputs, print_summary, progress,
)
from data_prep.writers import SFT_IMAGE_OPTIONS, export_llamafactory

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
    add_image_arguments(parser, defaults=SFT_IMAGE_OPTIONS, why="the released R-SFT's, LLaMA-Factory's default")


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    summary = export_llamafactory(progress(iter_inputs(args, policy), "export"), args.output, name=args.name,
                                  options=image_options(args), policy=policy)
    print_summary(summary, title="LLaMA-Factory dataset")
    print(f"  dataset_info.json entry: {args.name!r} in {args.output / 'dataset_info.json'}")
    print(f"  LLaMA-Factory training config: {args.output / (args.name + '_sft.yaml')} "
          f"(image_max_pixels {args.max_pixels}, image_min_pixels {args.min_pixels})")
    print(f"  run: llamafactory-cli train {args.output / (args.name + '_sft.yaml')} model_name_or_path=... output_dir=...")
    return 0

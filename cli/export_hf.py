"""Merge a verl FSDP checkpoint (the R-SFT run, or the GRPO actor) into a Hugging Face model folder.

Picks the latest step (``latest_checkpointed_iteration.txt``) unless --step says otherwise, merges the
shards with ``verl.model_merger`` into ``<output>.incomplete``, checks the result is a complete VLM
folder (config, weights, processor, tokenizer) and renames it, so a crash never leaves a folder that
looks finished.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recipe.guardreasoner_vl.export_hf import export_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-dir", required=True, type=Path,
                        help="the run's trainer.default_local_dir, or one global_step_N folder")
    parser.add_argument("--component", default="",
                        help="sub-folder of the step holding the shards: '' for SFT (default), actor for GRPO")
    parser.add_argument("-o", "--output", required=True, type=Path, help="HF model folder to write")
    parser.add_argument("--step", type=int, default=None, help="export this step (default: the latest)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.epilog = (
        "examples:\n"
        "  # the R-SFT model GRPO starts from\n"
        "  guardreasoner-vl export-hf --checkpoint-dir checkpoints/guardreasoner-vl/r-sft-3b -o models/r-sft-3b\n"
        "  # the GRPO actor, for evaluation\n"
        "  guardreasoner-vl export-hf --checkpoint-dir checkpoints/guardreasoner-vl/grpo-3b --component actor -o models/grpo-3b\n"
    )


def run(args: argparse.Namespace) -> int:
    out = export_checkpoint(args.checkpoint_dir, args.output, step=args.step, component=args.component,
                            overwrite=args.overwrite)
    print(f"exported {out}")
    return 0

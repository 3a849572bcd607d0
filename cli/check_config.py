"""Compose a launch's Hydra config with its overrides and validate it as the entry point will, in seconds,
on a CPU: verl's own config validation, the checks verl makes only at run time (batch layout under
dynamic batch size, rollout tensor parallel vs GPUs per node), the reward manager and function, the
recipe's section; with ``--this-machine`` also the model folder, the data files and the packages the
config needs here (what ``main_grpo`` / ``main_sft`` check before any GPU is allocated).

ENTRY is ``sft`` or ``grpo`` (or the entry module); options go before it, Hydra overrides after it.
The launch scripts run this with their own overrides when ``CHECK_CONFIG=1`` (``full``: ``--this-machine``).
Warnings (padding, host memory) go to stderr; problems exit with 1, all of them listed.
"""

from __future__ import annotations

import argparse
import sys

from omegaconf import OmegaConf

from recipe.guardreasoner_vl.check_config import ENTRIES, check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-config", action="store_true", help="print the composed config (unresolved) first")
    parser.add_argument("--config-name", default=None,
                        help="another config of the recipe's folder (e.g. guardreasoner_vl_eco_grpo)")
    parser.add_argument("--this-machine", action="store_true",
                        help="also check this machine as the entry point does: model folder, data files, "
                             "flash-attn and vLLM where the config needs them")
    parser.add_argument("--host-memory-gib", type=float, default=None,
                        help="host memory per node in GiB: warn when a GRPO step's TransferQueue payload exceeds it")
    parser.add_argument("entry", help=f"one of {', '.join(sorted(ENTRIES))} (or the entry module)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="Hydra overrides, as given to the entry point")
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl check-config sft data.train_files=x.parquet trainer.n_gpus_per_node=8\n"
        "  guardreasoner-vl check-config --config-name guardreasoner_vl_eco_grpo grpo data.train_files=t.parquet \\\n"
        "      data.val_files=v.parquet actor_rollout_ref.model.path=/models/r-sft-3b\n"
        "  guardreasoner-vl check-config --this-machine --host-memory-gib 1024 grpo data.train_files=/shared/t.parquet \\\n"
        "      data.val_files=/shared/v.parquet actor_rollout_ref.model.path=/shared/r-sft trainer.nnodes=2\n"
    )


def run(args: argparse.Namespace) -> int:
    report = check(args.entry, args.overrides, config_name=args.config_name, this_machine=args.this_machine,
                   host_memory_gib=args.host_memory_gib)
    if args.print_config:
        print(OmegaConf.to_yaml(report.config))
    for warning in report.warnings:
        print(f"check-config: warning: {warning}", file=sys.stderr)
    print(report.summary())
    return 0

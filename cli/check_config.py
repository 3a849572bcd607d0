"""Compose a launch's Hydra config with its overrides and run the checks the entry point would run
(verl's own config validation included), in seconds, on a CPU, without data or a GPU.

ENTRY is ``sft`` or ``grpo`` (or the entry module); options go before it, Hydra overrides after it.
The launch scripts run this with their own overrides when ``CHECK_CONFIG=1``.
"""

from __future__ import annotations

import argparse

from omegaconf import OmegaConf

from recipe.guardreasoner_vl.check_config import ENTRIES, check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-config", action="store_true", help="print the composed config (unresolved) first")
    parser.add_argument("--config-name", default=None,
                        help="another config of the recipe's folder (e.g. guardreasoner_vl_eco_grpo)")
    parser.add_argument("entry", help=f"one of {', '.join(sorted(ENTRIES))} (or the entry module)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="Hydra overrides, as given to the entry point")
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl check-config sft data.train_files=x.parquet trainer.n_gpus_per_node=8\n"
        "  guardreasoner-vl check-config --config-name guardreasoner_vl_eco_grpo grpo data.train_files=t.parquet \\\n"
        "      data.val_files=v.parquet actor_rollout_ref.model.path=/models/r-sft-3b\n"
    )


def run(args: argparse.Namespace) -> int:
    report = check(args.entry, args.overrides, config_name=args.config_name)
    if args.print_config:
        print(OmegaConf.to_yaml(report.config))
    print(report.summary())
    return 0

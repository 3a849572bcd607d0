"""Run the whole GRPO recipe on the bundled sample, on a CPU, in a few minutes.

Builds the tiny random Qwen2.5-VL (unless --model names one), writes RL parquet from the bundled
sample (with safety-aware concatenations) and mini benchmarks, runs the real entry point
``python -m recipe.guardreasoner_vl.main_grpo`` on the CPU backend (the ``hf`` rollout, the dynamic
clip, the GuardReasoner reward, validation before and after training), and prints where the
checkpoint, metrics and validation generations are.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from demo.run import DEFAULT_VAL_BENCHMARKS, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="output folder (default: ./demo_output)")
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps (default: 3)")
    parser.add_argument("--model", type=Path, default=None, help="HF model folder (default: build the tiny model)")
    parser.add_argument(
        "--val-benchmarks",
        default=",".join(DEFAULT_VAL_BENCHMARKS),
        help=f"comma-separated bundled mini benchmarks for validation (default: {','.join(DEFAULT_VAL_BENCHMARKS)})",
    )
    parser.add_argument("--dry-run", action="store_true", help="prepare model and data, print the command, do not train")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for main_grpo (key=value)")
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl demo\n"
        "  guardreasoner-vl demo -o /tmp/demo --steps 5\n"
        "  guardreasoner-vl demo -- guardreasoner.clip_schedule.name=cosine\n"
    )


def run(args: argparse.Namespace) -> int:
    benchmarks = [b.strip() for b in args.val_benchmarks.split(",") if b.strip()]
    return run_demo(args.output, steps=args.steps, model=args.model, val_benchmarks=benchmarks,
                    overrides=args.overrides, dry_run=args.dry_run)

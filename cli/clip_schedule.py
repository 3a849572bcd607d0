"""Print the dynamic clip ratio the actor uses at each step 1..S, one value per line.

The schedules are those of the GRPO recipe (``guardreasoner.clip_schedule.{name,eps0,floor}``):
``product`` is the paper's B_s = eps0 * prod_{i<=s} (S - i) / S; the default floor (0.01) keeps the last
step a real PPO step, ``--floor 0`` prints the paper's formula; see docs/recipe.md.
"""

from __future__ import annotations

import argparse

from recipe.guardreasoner_vl.clip_schedule import CLIP_SCHEDULE_REGISTRY, DEFAULT_EPS0, DEFAULT_FLOOR, clip_values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--total-steps", type=int, required=True, help="total training steps S")
    parser.add_argument(
        "--schedule",
        default="product",
        choices=sorted(CLIP_SCHEDULE_REGISTRY),
        help="schedule name (default: product, the paper's)",
    )
    parser.add_argument("--eps0", type=float, default=DEFAULT_EPS0, help="initial clip ratio (default: 0.2)")
    parser.add_argument("--floor", type=float, default=DEFAULT_FLOOR,
                        help=f"lower bound on the ratio (default: {DEFAULT_FLOOR}; 0 = the paper's formula)")
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl clip-schedule --total-steps 10\n"
        "  guardreasoner-vl clip-schedule --total-steps 10 --floor 0    # the paper's formula: 0 at the last step\n"
        "  guardreasoner-vl clip-schedule --total-steps 100 --schedule cosine --floor 0.02\n"
        "\nOne value per line, for steps 1..S (the value used by the actor update of that step)."
    )


def run(args: argparse.Namespace) -> int:
    for value in clip_values(args.schedule, args.total_steps, eps0=args.eps0, floor=args.floor):
        print(f"{value:.10g}")
    return 0

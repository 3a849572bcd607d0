"""Safety-aware concatenation of sample pairs into a records JSONL (docs/design.md §5); then build-rl.

Every input record is first validated as build-rl will (both labels, the transcript, every image
decodes). A bad record stops the command naming its row, field and image file (--on-error raise),
or is dropped and counted (--on-error skip, never a hard failure); pairs are drawn only from the
records that passed, and there are exactly round(N * fraction / (1 - fraction)) of them for N valid
records. Writes the valid records followed by the new concatenations (or only the new ones with
--only-new); concatenated images are saved under <output folder>/images/.
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from pathlib import Path

from cli.options import add_input_arguments, error_policy, iter_inputs, progress
from data_prep.concat import DEFAULT_FRACTION, LAYOUTS, concatenate, valid_parents
from data_prep.records_io import write_records

EXAMPLES = """examples:
  guardreasoner-vl concat runs/split/train.jsonl -o runs/concat/train.jsonl --fraction 0.2 --seed 0
  guardreasoner-vl build-rl runs/concat/train.jsonl -o data/rl/train.parquet
  guardreasoner-vl concat corpus.jsonl -o /tmp/concat.jsonl --on-error skip   # drop rows with a bad image
  guardreasoner-vl concat runs/split/train.jsonl -o runs/concat/extra.jsonl --count 100 --only-new --layout vertical
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    add_input_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output records JSONL")
    parser.add_argument("--fraction", type=float, default=DEFAULT_FRACTION,
                        help=f"share of concatenations in the output (default and paper: {DEFAULT_FRACTION})")
    parser.add_argument("--count", type=int, default=None, help="exact number of concatenations (overrides --fraction)")
    parser.add_argument("--layout", default="horizontal", choices=LAYOUTS, help="image layout (default: horizontal)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the pairs (default: 0)")
    parser.add_argument("--only-new", action="store_true", help="write only the concatenations, not the inputs")


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    originals = valid_parents(progress(iter_inputs(args, policy), "validate"), policy)
    new = concatenate(originals, fraction=args.fraction, count=args.count, seed=args.seed, layout=args.layout)
    made = Counter()

    def counted(records):
        for record in records:
            made[record.modality] += 1
            yield record

    out = counted(new) if args.only_new else itertools.chain(originals, counted(new))
    n = write_records(progress(out, "concat"), args.output)
    print(f"concatenated records: {args.output}")
    print(f"  rows in {len(originals) + policy.num_skipped}, skipped {policy.num_skipped}"
          + (f" {dict(policy.skipped)}" if policy.skipped else ""))
    print(f"  concatenations {sum(made.values())} {dict(made)}, rows out {n} (seed {args.seed}, layout {args.layout})")
    return 0

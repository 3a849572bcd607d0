"""Measure R-SFT rows exactly as verl will tokenize them; report the lengths and, with -o, write a
copy without the rows over --max-length.

The R-SFT config keeps verl's ``truncation: error`` (a cut row would train on a trace without its
verdict), so one overlong row would stop a run when the data loader reaches it. This measures every
row with the dataset class training uses. Exit code 1 when rows are over the limit and no -o is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recipe.guardreasoner_vl.sft_lengths import DEFAULT_MAX_LENGTH, measure, write_without


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("parquet", type=Path, help="SFT parquet written by build-sft")
    parser.add_argument("--model", type=Path, required=True, help="the model folder R-SFT starts from (tokenizer + processor)")
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH,
                        help=f"data.max_length of the SFT run (default and paper: {DEFAULT_MAX_LENGTH})")
    parser.add_argument("-o", "--output", type=Path, default=None, help="write a copy without the overlong / broken rows")
    parser.add_argument("--report", type=Path, default=None, help="write the report as JSON")
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl check-sft-lengths data/sft/train.parquet --model Qwen2.5-VL-7B-Instruct\n"
        "  guardreasoner-vl check-sft-lengths data/sft/train.parquet --model /models/qwen2.5-vl-3b "
        "-o data/sft/train.fit.parquet --report data/sft/lengths.json\n"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with tqdm(desc="measure", unit="row") as bar:
        report = measure(args.parquet, args.model, max_length=args.max_length, progress=bar.update)
    summary = report.summary()
    print(
        f"{summary['rows']} rows: {summary['overlong']} longer than {args.max_length} tokens, "
        f"{summary['errors']} not buildable; length p50 {summary['length_p50']}, p99 {summary['length_p99']}, "
        f"max {summary['length_max']}"
    )
    for row_id, reason in list(summary["error_reasons"].items())[:10]:
        print(f"  row {row_id!r}: {reason}")
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2))
    if args.output:
        kept = write_without(args.parquet, args.output, report.dropped)
        print(f"wrote {kept} rows -> {args.output} (dropped {len(report.dropped)}; ids in the report)")
        return 0
    return 1 if report.dropped else 0

"""Measure R-SFT rows exactly as verl will tokenize them; report the rows over --max-length (count and
share per modality) and, with -o, write a copy that fits.

The R-SFT config keeps verl's ``truncation: error`` (a row cut at the limit would train on a trace
without its verdict), so one overlong row would stop a run when the data loader reaches it. This
measures every row with the dataset class training uses. With -o the overlong rows are dropped, or,
with --truncate-prompt, their request/response texts are shortened until they fit: the assistant
target (reasoning and verdict) is never cut. Exit code 1 when rows are over the limit and no -o is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recipe.guardreasoner_vl.sft_lengths import DEFAULT_MAX_LENGTH, measure, write_fitted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("parquet", type=Path, help="SFT parquet written by build-sft")
    parser.add_argument("--model", type=Path, required=True, help="the model folder R-SFT starts from (tokenizer + processor)")
    parser.add_argument("--max-length", type=int, default=DEFAULT_MAX_LENGTH,
                        help=f"data.max_length of the SFT run (default and paper: {DEFAULT_MAX_LENGTH})")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="write a copy that fits: overlong rows dropped (or truncated, --truncate-prompt), broken rows dropped")
    parser.add_argument("--truncate-prompt", action="store_true",
                        help="shorten the request/response text of an overlong row until it fits instead of dropping it "
                             "(the assistant target is never cut; a row that cannot fit is still dropped)")
    parser.add_argument("--report", type=Path, default=None, help="write the report as JSON")
    parser.epilog = (
        "examples:\n"
        "  guardreasoner-vl check-sft-lengths data/sft/train.parquet --model Qwen2.5-VL-7B-Instruct\n"
        "  guardreasoner-vl check-sft-lengths data/sft/train.parquet --model /models/qwen2.5-vl-3b "
        "-o data/sft/train.fit.parquet --report data/sft/lengths.json\n"
        "  guardreasoner-vl check-sft-lengths data/sft/train.parquet --model /models/qwen2.5-vl-3b "
        "-o data/sft/train.fit.parquet --truncate-prompt\n"
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with tqdm(desc="measure", unit="row", disable=None) as bar:
        report = measure(args.parquet, args.model, max_length=args.max_length, truncate_prompt=args.truncate_prompt,
                         progress=bar.update)
    summary = report.summary()
    print(
        f"{summary['rows']} rows: {summary['overlong']} ({summary['overlong_share']:.2%}) longer than "
        f"{args.max_length} tokens, {summary['errors']} not buildable; length p50 {summary['length_p50']}, "
        f"p99 {summary['length_p99']}, max {summary['length_max']}"
    )
    for modality, counts in summary["by_modality"].items():
        print(f"  {modality}: {counts['overlong']} of {counts['rows']} rows over ({counts['share']:.2%})")
    for row_id, reason in list(summary["error_reasons"].items())[:10]:
        print(f"  row {row_id!r}: {reason}")
    if args.truncate_prompt:
        print(f"prompt-truncated to fit: {summary['truncated']} rows; cannot fit: {len(summary['untruncatable_reasons'])}")
        for row_id, reason in list(summary["untruncatable_reasons"].items())[:10]:
            print(f"  row {row_id!r}: {reason}")
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2))
    if args.output:
        kept = write_fitted(args.parquet, args.output, report)
        print(f"wrote {kept} rows -> {args.output} (dropped {len(report.dropped)}, prompt-truncated "
              f"{len(report.truncated)}; ids in the report)")
        return 0
    return 1 if report.dropped or report.truncated else 0

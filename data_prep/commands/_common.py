"""Options and helpers every data command shares: inputs, error policy, images, progress, summary."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, Optional, TypeVar

from data_prep.errors import ON_ERROR_CHOICES, ErrorPolicy
from data_prep.readers import FORMATS, parse_mapping, read_any
from data_prep.record import GuardRecord
from data_prep.writers import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, DEFAULT_MIN_PIXELS, ImageOptions, WriteSummary

T = TypeVar("T")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """Positional inputs plus how to read them."""
    parser.add_argument("inputs", nargs="+", help="input files or folders (read in order)")
    parser.add_argument("--format", default="auto", choices=FORMATS,
                        help="input layout (default: auto = VLTrain folder/JSON, records JSONL, else a table)")
    parser.add_argument("--map", default="", metavar="FIELD=COLUMN,...",
                        help="column mapping for table/hf inputs, e.g. request=prompt,request_label=label")
    parser.add_argument("--image-root", type=Path, default=None,
                        help="folder relative image paths resolve against (default: the input file's folder)")
    parser.add_argument("--source", default=None, help="data_source for table/hf rows (default: the file stem)")
    parser.add_argument("--hf-split", default="train", help="split for --format hf (default: train)")
    add_error_argument(parser)


def add_error_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--on-error", default="raise", choices=ON_ERROR_CHOICES,
                        help="bad row: stop with its id and field (raise, default) or count it and go on (skip)")


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("images")
    group.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                       help=f"per-image pixel budget for the processor (default: {DEFAULT_MAX_PIXELS} = 1280 visual tokens)")
    group.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS,
                       help=f"per-image minimum pixels (default: {DEFAULT_MIN_PIXELS})")
    group.add_argument("--image-max-side", type=int, default=DEFAULT_MAX_SIDE,
                       help=f"shrink stored images whose longer side exceeds this (default: {DEFAULT_MAX_SIDE}; 0 = never)")
    group.add_argument("--image-format", default="png", choices=("png", "jpeg"),
                       help="encoding for images that must be re-encoded (default: png)")


def image_options(args: argparse.Namespace) -> ImageOptions:
    return ImageOptions(max_pixels=args.max_pixels, min_pixels=args.min_pixels,
                        max_side=args.image_max_side or None, fmt=args.image_format.upper())


def error_policy(args: argparse.Namespace) -> ErrorPolicy:
    return ErrorPolicy(args.on_error)


def iter_inputs(args: argparse.Namespace, policy: ErrorPolicy) -> Iterator[GuardRecord]:
    """Every record of every input, in order, under one error policy."""
    mapping = parse_mapping(args.map)
    for path in args.inputs:
        yield from read_any(path, fmt=args.format, mapping=mapping, source=args.source,
                            image_root=args.image_root, split=args.hf_split, policy=policy)


def progress(items: Iterable[T], desc: str, total: Optional[int] = None) -> Iterable[T]:
    """A tqdm bar on a terminal, nothing in logs."""
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="row", total=total, disable=None, file=sys.stderr)


def progress_bar(desc: str):
    """A tqdm bar to ``update(n)`` by hand (for loops that are not a plain iterable)."""
    from tqdm import tqdm

    return tqdm(desc=desc, unit="row", disable=None, file=sys.stderr)


def print_summary(summary: WriteSummary, *, title: str) -> None:
    """The closing summary: rows in/out, skipped with reasons, images, estimated prompt tokens.

    Reading is lazy (rows are read while written), so ``summary.skipped`` holds the rows skipped
    by the readers and by the writer alike; rows in = rows out + skipped.
    """
    skipped = dict(summary.skipped)
    n_skipped = sum(skipped.values())
    print(f"{title}: {summary.output}")
    print(f"  rows in {summary.rows_out + n_skipped}, rows out {summary.rows_out}, skipped {n_skipped}"
          + (f" {json.dumps(skipped)}" if skipped else ""))
    for example in summary.skipped_examples[:5]:
        print(f"    e.g. {example}")
    print(f"  images {summary.images} (resized {summary.images_resized}, re-encoded {summary.images_reencoded})")
    print(f"  estimated prompt tokens: mean {summary.est_prompt_tokens_mean:.0f}, max {summary.est_prompt_tokens_max} "
          "(chars/4 + template + visual tokens; an estimate)")
    if summary.by_source:
        print(f"  by source: {json.dumps(dict(summary.by_source))}")
    if summary.by_modality:
        print(f"  by modality: {json.dumps(dict(summary.by_modality))}")

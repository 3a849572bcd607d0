"""Write the evaluation files `evaluate` reads: one records JSONL per released benchmark file.

Reads the GuardReasoner benchmark files from a folder (<Stem>.json, e.g. SPA_VL_Eval.json; the VL
benchmarks' images in images/<Stem>/<id>.<ext>, matched by id) and writes <output>/<Stem>.jsonl with
the images, validated and normalised, under <output>/images/. Each row carries its benchmark's
display name (data_source), the tasks it is scored on, and the label slots its source leaves empty.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import add_error_argument, add_image_arguments, error_policy, image_options, print_summary, progress
from data_prep.benchmarks import BENCHMARK_FILES, benchmark_file
from data_prep.readers import read_benchmark
from data_prep.writers import write_eval_file

EXAMPLES = """examples:
  guardreasoner-vl build-eval demo/sample_data/benchmarks -o data/eval
  guardreasoner-vl build-eval /data/GuardReasoner-VLTest -o data/eval --benchmarks HarmImageTest SPA_VL_Eval
  guardreasoner-vl build-eval /data/eval_json --image-root /data/eval_images -o data/eval
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("benchmarks_dir", type=Path, help="folder with the released <Stem>.json files (and images/<Stem>/)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (one <Stem>.jsonl per benchmark file, images/)")
    parser.add_argument("--benchmarks", nargs="+", default=None, metavar="NAME",
                        help="benchmark files to convert, by file stem or display name "
                             "(default: every known <Stem>.json in the folder)")  # fmt: skip
    parser.add_argument("--image-root", type=Path, default=None,
                        help="images of benchmark STEM are read from IMAGE_ROOT/STEM/<id>.<ext> "
                             "(default: BENCHMARKS_DIR/images/STEM)")  # fmt: skip
    add_error_argument(parser)
    add_image_arguments(parser)


def chosen_stems(benchmarks_dir: Path, names: list[str] | None) -> list[str]:
    """The released file stems to convert: ``names`` (stems or display names), else every known file present."""
    if not benchmarks_dir.is_dir():
        raise NotADirectoryError(f"{benchmarks_dir} is not a folder")
    if names:
        stems = [benchmark_file(name).stem for name in names]
        missing = [s for s in stems if not (benchmarks_dir / f"{s}.json").is_file()]
        if missing:
            raise FileNotFoundError(f"no {', '.join(m + '.json' for m in missing)} in {benchmarks_dir}")
        return stems
    stems = [stem for stem in BENCHMARK_FILES if (benchmarks_dir / f"{stem}.json").is_file()]
    if not stems:
        raise FileNotFoundError(f"no known benchmark file in {benchmarks_dir}; known: {', '.join(BENCHMARK_FILES)}")
    return stems


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    options = image_options(args)
    for stem in chosen_stems(args.benchmarks_dir, args.benchmarks):
        image_root = args.image_root / stem if args.image_root is not None else None
        records = read_benchmark(stem, args.benchmarks_dir, image_root=image_root, policy=policy)
        summary = write_eval_file(progress(records, stem), args.output / f"{stem}.jsonl", options=options, policy=policy)
        print_summary(summary, title=f"benchmark {benchmark_file(stem).name} ({stem})")
    return 0

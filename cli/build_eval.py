"""Write one evaluation JSONL per benchmark (id, benchmark, task, request, response, labels, image).

Reads the GuardReasoner benchmark files from a folder (<Name>.json; VL benchmarks' images in
images/<Name>/<id>.<ext>, matched by id) and writes <output>/<Name>.jsonl plus
<output>/images/<Name>/. Labels a benchmark does not provide are written as null.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_prep.benchmarks import ALIASES, BENCHMARKS
from cli.options import add_error_argument, add_image_arguments, error_policy, image_options, print_summary, progress
from data_prep.readers import read_benchmark
from data_prep.writers import write_eval_file

EXAMPLES = """examples:
  guardreasoner-vl build-eval demo/sample_data/benchmarks -o data/eval
  guardreasoner-vl build-eval /data/GuardReasoner-VLTest -o data/eval --benchmarks HarmImageTest SPA_VL_Eval
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("benchmarks_dir", type=Path, help="folder with <Name>.json files (and images/<Name>/)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (one <Name>.jsonl per benchmark, images/)")
    parser.add_argument("--benchmarks", nargs="+", default=None, metavar="NAME",
                        help="benchmarks to convert (default: every known <Name>.json in the folder)")
    add_error_argument(parser)
    add_image_arguments(parser)


def _chosen(args: argparse.Namespace) -> list[str]:
    if args.benchmarks:
        missing = [n for n in args.benchmarks if not (args.benchmarks_dir / f"{n}.json").is_file()]
        if missing:
            raise FileNotFoundError(f"no {', '.join(m + '.json' for m in missing)} in {args.benchmarks_dir}")
        return list(args.benchmarks)
    if not args.benchmarks_dir.is_dir():
        raise NotADirectoryError(f"{args.benchmarks_dir} is not a folder")
    known = set(BENCHMARKS) | set(ALIASES)
    names = sorted(p.stem for p in args.benchmarks_dir.glob("*.json") if p.stem in known)
    if not names:
        raise FileNotFoundError(f"no known benchmark file in {args.benchmarks_dir}; known: {', '.join(BENCHMARKS)}")
    return names


def run(args: argparse.Namespace) -> int:
    policy = error_policy(args)
    options = image_options(args)
    for name in _chosen(args):
        records = read_benchmark(name, args.benchmarks_dir, policy=policy)
        summary = write_eval_file(progress(records, name), args.output, benchmark=name, options=options, policy=policy)
        print_summary(summary, title=f"benchmark {name}")
    return 0

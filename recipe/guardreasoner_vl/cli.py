"""``guardreasoner-vl``: one console script, one subcommand per job.

Each subcommand lives in its own module, imported only when chosen (so ``--help`` is instant and
light commands never import torch). A command module provides:

- ``HELP``: one line for the command list;
- ``add_arguments(parser)``: its options (put usage examples in ``parser.epilog``);
- ``run(args) -> int``: the work; it calls library functions and returns an exit code.

Known errors (``ValueError``, ``FileNotFoundError``, :class:`CLIError`) become one line on stderr
and exit code 1; set ``GUARDREASONER_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

#: name -> (module, one-line help). The help is here too so that ``--help`` imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("recipe.guardreasoner_vl.demo", "run the whole recipe on the bundled sample (CPU, tiny model)"),
    "make-tiny-model": ("recipe.guardreasoner_vl.tiny_model", "build a tiny random Qwen2.5-VL with tokenizer and processor, offline"),
    "clip-schedule": ("recipe.guardreasoner_vl.clip_schedule", "print the dynamic clip ratio for steps 1..S"),
    "build-rl": ("data_prep.commands.build_rl", "write RL parquet for verl's RLHFDataset (optionally with concatenations)"),
    "build-sft": ("data_prep.commands.build_sft", "write SFT parquet for verl's MultiTurnSFTDataset"),
    "check-sft-lengths": ("recipe.guardreasoner_vl.sft_lengths", "measure SFT rows with verl's tokenization; drop rows over max_length"),
    "export-llamafactory": ("data_prep.commands.export_llamafactory", "export a LLaMA-Factory sharegpt dataset"),
    "build-eval": ("data_prep.commands.build_eval", "write one evaluation file per benchmark"),
    "concat": ("data_prep.commands.concat", "safety-aware concatenation of sample pairs"),
    "mine": ("data_prep.commands.mine", "hard-sample mining with k generations per row"),
    "split": ("data_prep.commands.split", "sample the RL pool and split it train/val"),
    "synthesize": ("data_prep.synthesize.command", "write reasoning traces through an OpenAI-compatible API"),
    "evaluate": ("recipe.guardreasoner_vl.evaluation.commands.evaluate", "generate on the benchmarks and score (F1 tables)"),
    "score": ("recipe.guardreasoner_vl.evaluation.commands.score", "score a generations JSONL (F1 tables, no generation)"),
    "moderate": ("recipe.guardreasoner_vl.evaluation.commands.moderate", "reasoning and labels for one input"),
}


class CLIError(Exception):
    """A user error with a message that says how to fix it."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("guardreasoner-vl")
    except Exception:
        from recipe.guardreasoner_vl import __version__

        return __version__


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The top-level parser; imports the module of ``only`` (the chosen command) and no other."""
    parser = argparse.ArgumentParser(
        prog="guardreasoner-vl",
        description="GuardReasoner-VL on verl: data, training, evaluation and moderation for a reasoning VLM guard.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=getattr(module, "__doc__", None) or help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, NotADirectoryError) as err:
        if os.environ.get("GUARDREASONER_DEBUG"):
            raise
        print(f"guardreasoner-vl {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

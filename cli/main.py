"""``guardreasoner-vl``: one console script, one subcommand per job.

Every command module lives in this package (``cli/<command>.py``, dashes as underscores) and is
imported only when its command is chosen, so ``--help`` is instant and light commands never import
torch. A command module provides:

- a module docstring: the command's description in ``--help``;
- ``add_arguments(parser)``: its options (usage examples go in ``parser.epilog``);
- ``run(args) -> int``: parses nothing itself, calls library functions, returns an exit code.

The one-line help of each command is written once, in :data:`COMMANDS`.

Known errors (``ValueError``, ``FileNotFoundError``, :class:`CLIError`) become one line on stderr
and exit code 1; set ``GUARDREASONER_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

#: name -> one-line help, in pipeline order. The module is ``cli.<name with _ for ->``.
COMMANDS: dict[str, str] = {
    # data (data_prep)
    "build-sft": "write R-SFT parquet for verl's MultiTurnSFTDataset",
    "check-sft-lengths": "measure SFT rows with verl's tokenization; drop or prompt-truncate rows over max_length",
    "export-llamafactory": "export a LLaMA-Factory sharegpt dataset",
    "synthesize": "write reasoning traces through an OpenAI-compatible API",
    "split": "sample the RL pool and split it train/val",
    "concat": "safety-aware concatenation of sample pairs",
    "build-rl": "write RL parquet for verl's RLHFDataset",
    "build-eval": "write one evaluation file per benchmark",
    # inference and evaluation
    "mine": "hard-sample mining with k generations per row",
    "evaluate": "generate on the benchmarks and score (F1 tables)",
    "score": "score a generations JSONL (F1 tables, no generation)",
    "moderate": "reasoning and labels for one input",
    # verl integration
    "check-config": "compose a launch's Hydra config and run verl's checks, without a GPU",
    "clip-schedule": "print the dynamic clip ratio for steps 1..S",
    "export-hf": "turn a verl checkpoint into a Hugging Face model folder",
    # demo kit
    "make-tiny-model": "build a tiny random Qwen2.5-VL with tokenizer and processor, offline",
    "demo": "run the whole recipe on the bundled sample (CPU, tiny model)",
}


class CLIError(Exception):
    """A user error with a message that says how to fix it."""


def command_module(name: str) -> str:
    """The module implementing command ``name``."""
    return f"cli.{name.replace('-', '_')}"


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
    for name, help_text in COMMANDS.items():
        if name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(command_module(name))
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=module.__doc__ or help_text,
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

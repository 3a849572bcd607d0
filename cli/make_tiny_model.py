"""Build a tiny, random, offline Qwen2.5-VL (tokenizer, processor, weights) in one folder.

It loads and runs like Qwen2.5-VL-3B/7B-Instruct (same classes, special tokens, chat layout and
image pipeline) and builds in seconds without a model hub: the model behind the tests, the CPU demo
and the CPU trainer. The same seed gives byte-identical files. See docs/tiny_model_and_sample.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from demo.tiny_model import build_tiny_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write the model into (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default: 0)")
    parser.epilog = (
        "example:\n"
        "  guardreasoner-vl make-tiny-model -o /tmp/tiny-qwen2.5-vl --seed 0\n"
        "  python -c \"from transformers import AutoProcessor; AutoProcessor.from_pretrained('/tmp/tiny-qwen2.5-vl')\""
    )


def run(args: argparse.Namespace) -> int:
    out = build_tiny_model(args.output, seed=args.seed)
    info = json.loads((out / "tiny_model_info.json").read_text())
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(
        f"wrote {out} ({info['parameters']:,} parameters, {size / 1e6:.2f} MB, "
        f"vision tokens certified {info['certified_margin_nats']} nats below the best token)"
    )
    return 0

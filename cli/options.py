"""Options every command shares, each defined once: inputs and error policy, images, the inference
backend and decoding, scoring, progress bars and the closing summary of a build."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TypeVar

from data_prep.chat_request import SERVER_KINDS
from data_prep.errors import ON_ERROR_CHOICES, ErrorPolicy
from data_prep.readers import FORMATS, parse_mapping, read_any
from data_prep.record import GuardRecord
from data_prep.writers import DEFAULT_MAX_SIDE, ImageOptions, WriteSummary
from evaluation.metrics import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from inference.base import BACKEND_NAMES, DEFAULT_MAX_NEW_TOKENS, InferenceBackend, get_backend

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


def add_image_arguments(
    parser: argparse.ArgumentParser, *, defaults: ImageOptions = ImageOptions(), why: str = "1280 visual tokens"
) -> None:
    """Image options; ``defaults`` gives the command's pixel budget (RL: :class:`ImageOptions`'s, R-SFT:
    ``SFT_IMAGE_OPTIONS``) and ``why`` the reason shown in ``--help``."""
    group = parser.add_argument_group("images")
    group.add_argument("--max-pixels", type=int, default=defaults.max_pixels,
                       help=f"per-image pixel budget for the processor (default: {defaults.max_pixels}, {why})")
    group.add_argument("--min-pixels", type=int, default=defaults.min_pixels,
                       help=f"per-image minimum pixels (default: {defaults.min_pixels})")
    group.add_argument("--max-image-side", type=int, default=DEFAULT_MAX_SIDE,
                       help=f"shrink stored images whose longer side exceeds this (default: {DEFAULT_MAX_SIDE}; 0 = never)")
    group.add_argument("--image-format", default="png", choices=("png", "jpeg"),
                       help="encoding for images that must be re-encoded (default: png)")


def image_options(args: argparse.Namespace) -> ImageOptions:
    return ImageOptions(max_pixels=args.max_pixels, min_pixels=args.min_pixels,
                        max_side=args.max_image_side or None, fmt=args.image_format.upper())


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

def add_server_kind_argument(group: Any, *, prefix: str = "") -> None:
    """``--server-kind``: the request form an OpenAI-compatible server honours (synthesize, --backend openai)."""
    group.add_argument("--server-kind", choices=SERVER_KINDS, default="auto",
                       help=f"{prefix}the request form the server honours (token limit, sampling fields): openai "
                            "(the official API), vllm (vLLM, SGLang), transformers (`transformers serve`). "
                            "Default: auto = openai for api.openai.com, else vllm")  # fmt: skip


def add_backend_arguments(
    parser: argparse.ArgumentParser,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_pixels: Optional[int] = None,
) -> None:
    """``--backend``, ``--model`` and the options of each backend.

    The decoding defaults are the caller's paper values: greedy for evaluation and ``moderate``,
    T = 1.0 / top-p 0.95 with build-rl's pixel budget for hard-sample mining.
    """
    group = parser.add_argument_group("inference backend")
    group.add_argument("--backend", choices=BACKEND_NAMES, default="hf",
                       help="hf: transformers generate (CPU/GPU); openai: an OpenAI-compatible server "
                            "(e.g. `vllm serve`); vllm: offline vLLM (GPU). Default: hf")  # fmt: skip
    group.add_argument("--model", required=True,
                       help="model directory (hf, vllm) or the server's model name (openai)")  # fmt: skip
    group.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                       help=f"decoding budget (paper: 4096). Default: {DEFAULT_MAX_NEW_TOKENS}")  # fmt: skip
    group.add_argument("--temperature", type=float, default=temperature,
                       help=f"sampling temperature, 0 = greedy. Default and paper: {temperature:g}")  # fmt: skip
    group.add_argument("--top-p", type=float, default=top_p,
                       help=f"nucleus sampling when temperature > 0. Default and paper: {top_p:g}")  # fmt: skip
    group.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed. Default: 0")
    group.add_argument("--device", default="auto", help="hf: cuda, cpu or auto. Default: auto")
    group.add_argument("--dtype", default="auto", help="hf/vllm: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16")
    group.add_argument("--max-pixels", type=int, default=max_pixels,
                       help="cap image pixels (fewer visual tokens): hf/vllm hand it to the processor, openai "
                            "shrinks images to it before sending. Default: "
                            + ("the processor's setting" if max_pixels is None else str(max_pixels)))  # fmt: skip
    group.add_argument("--base-url", default=None,
                       help="openai: server URL. Default: $OPENAI_BASE_URL or http://127.0.0.1:8000/v1 "
                            "(the key is read from $OPENAI_API_KEY)")  # fmt: skip
    add_server_kind_argument(group, prefix="openai: ")
    group.add_argument("--concurrency", type=int, default=16, help="openai: requests in flight. Default: 16")
    group.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model. Default: 1")
    group.add_argument("--max-model-len", type=int, default=None,
                       help="vllm: context length. Default: sized from --max-pixels and --max-new-tokens "
                            "(a longer prompt is refused alone, never the batch)")  # fmt: skip


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument("--n-resamples", type=int, default=DEFAULT_RESAMPLES,
                       help=f"bootstrap resamples for the 95%% CIs. Default: {DEFAULT_RESAMPLES}")  # fmt: skip
    group.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="CI level. Default: 0.95")
    group.add_argument("--model-name", default=None, help="name shown in the report. Default: the model's folder name")
    group.add_argument("--no-charts", action="store_true", help="skip the PNG bar charts")


def backend_from_args(args: argparse.Namespace, *, batch_size: int = 8) -> InferenceBackend:
    """Build the chosen backend with only the options it takes."""
    only = {"--base-url": ("openai", args.base_url), "--server-kind": ("openai", args.server_kind != "auto"),
            "--max-model-len": ("vllm", args.max_model_len)}  # fmt: skip
    for option, (backend, given) in only.items():
        if given and args.backend != backend:
            raise ValueError(f"{option} is only for --backend {backend}")
    options: dict[str, Any]
    if args.backend == "hf":
        options = {"model_path": args.model, "device": args.device, "dtype": args.dtype,
                   "batch_size": batch_size, "max_pixels": args.max_pixels}  # fmt: skip
    elif args.backend == "openai":
        options = {"model": args.model, "base_url": args.base_url, "server_kind": args.server_kind,
                   "concurrency": args.concurrency, "max_pixels": args.max_pixels}  # fmt: skip
    else:
        options = {"model_path": args.model, "tensor_parallel_size": args.tensor_parallel_size,
                   "max_pixels": args.max_pixels, "dtype": args.dtype, "max_model_len": args.max_model_len,
                   "max_new_tokens": args.max_new_tokens}  # fmt: skip
    return get_backend(args.backend, **options)


def model_name(args: argparse.Namespace) -> str:
    """The model's name in reports: ``--model-name``, else the model folder's name."""
    return args.model_name or Path(str(args.model).rstrip("/")).name or str(args.model)

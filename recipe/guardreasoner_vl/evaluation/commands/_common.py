"""Options shared by the evaluation commands: backend choice and decoding, defined once."""

from __future__ import annotations

import argparse
from typing import Any, Optional

from recipe.guardreasoner_vl.inference.base import BACKEND_NAMES, DEFAULT_MAX_NEW_TOKENS, InferenceBackend, get_backend
from recipe.guardreasoner_vl.evaluation.metrics import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES


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
                       help="hf/vllm: cap image pixels (fewer visual tokens). Default: "
                            + ("the processor's setting" if max_pixels is None else str(max_pixels)))  # fmt: skip
    group.add_argument("--base-url", default=None,
                       help="openai: server URL. Default: $OPENAI_BASE_URL or http://127.0.0.1:8000/v1 "
                            "(the key is read from $OPENAI_API_KEY)")  # fmt: skip
    group.add_argument("--concurrency", type=int, default=16, help="openai: requests in flight. Default: 16")
    group.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per model. Default: 1")


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument("--n-resamples", type=int, default=DEFAULT_RESAMPLES,
                       help=f"bootstrap resamples for the 95%% CIs. Default: {DEFAULT_RESAMPLES}")  # fmt: skip
    group.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, help="CI level. Default: 0.95")
    group.add_argument("--model-name", default=None, help="name shown in the report. Default: the model's folder name")
    group.add_argument("--no-charts", action="store_true", help="skip the PNG bar charts")


def backend_from_args(args: argparse.Namespace, *, batch_size: int = 8) -> InferenceBackend:
    """Build the chosen backend with only the options it takes."""
    options: dict[str, Any]
    if args.backend == "hf":
        options = {"model_path": args.model, "device": args.device, "dtype": args.dtype,
                   "batch_size": batch_size, "max_pixels": args.max_pixels}  # fmt: skip
    elif args.backend == "openai":
        options = {"model": args.model, "base_url": args.base_url, "concurrency": args.concurrency}
    else:
        options = {"model_path": args.model, "tensor_parallel_size": args.tensor_parallel_size,
                   "max_pixels": args.max_pixels, "dtype": args.dtype}  # fmt: skip
    return get_backend(args.backend, **options)


def model_name(args: argparse.Namespace) -> str:
    from pathlib import Path

    return args.model_name or Path(str(args.model).rstrip("/")).name or str(args.model)

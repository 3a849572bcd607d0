"""Overhead of the dynamic-clip loss over verl's ``vanilla`` loss, on training-size tensors.

Two levels, each forward + backward, timed interleaved (A B B A A B ...) in the same process so a busy
host slows both alike; the figure is the ratio of the medians (goal: <= 1.05):

- ``policy_loss``: ``compute_policy_loss_dynamic_clip`` vs verl's ``compute_policy_loss_vanilla`` on
  padded ``(batch, response_len)`` tensors (default 256 x 3072, the paper's response length);
- ``ppo_loss``: the worker-side loss as installed on the actor (``ScheduledClipLoss``, which reads the
  clip from the batch and derives the config) vs ``partial(ppo_loss, config=...)`` with ``vanilla``,
  from flat log-probs of ``(prompt + response)`` tokens per sequence, as the FSDP engine hands them.

Usage::

    python benchmarks/bench_policy_loss.py                       # 256 x 3072, CPU, one thread
    python benchmarks/bench_policy_loss.py --device cuda --json out.json
    python benchmarks/bench_policy_loss.py --batch 32 --length 512 --repeats 10   # quick
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tensordict import TensorDict  # noqa: E402

import verl  # noqa: E402
from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.workers.config import FSDPActorConfig, PolicyLossConfig  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402

from recipe.guardreasoner_vl.policy_loss import (  # noqa: E402
    CLIP_EPS_KEY,
    LOSS_MODE,
    ScheduledClipLoss,
    compute_policy_loss_dynamic_clip,
    with_clip_eps,
)

EPS = 0.1
PROMPT_LEN = 64


def actor_config(loss_mode: str, eps: float = EPS) -> FSDPActorConfig:
    return FSDPActorConfig(
        strategy="fsdp2",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio=eps,
        clip_ratio_low=eps,
        clip_ratio_high=eps,
        policy_loss=PolicyLossConfig(loss_mode=loss_mode),
    )


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_pair(a: Callable[[], None], b: Callable[[], None], repeats: int, device: str) -> tuple[list, list]:
    for fn in (a, b):  # warm-up
        fn()
    times_a, times_b = [], []
    for i in range(repeats):
        # Alternate which runs first: the first of a pair pays for freeing the previous graph.
        pair = ((a, times_a), (b, times_b)) if i % 2 == 0 else ((b, times_b), (a, times_a))
        for fn, out in pair:
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            out.append(time.perf_counter() - start)
    return times_a, times_b


def bench_policy_loss(batch: int, length: int, repeats: int, device: str, gen: torch.Generator) -> dict:
    old = (torch.randn(batch, length, generator=gen) * 0.1 - 1.0).to(device)
    new = (old.cpu() + torch.randn(batch, length, generator=gen) * 0.2).to(device).requires_grad_(True)
    adv = torch.randn(batch, 1, generator=gen).expand(batch, length).contiguous().to(device)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=gen)
    mask = (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).to(device)
    vanilla_cfg = actor_config("vanilla")
    scheduled_cfg = with_clip_eps(actor_config(LOSS_MODE), EPS)

    def run(fn, cfg):
        loss, _ = fn(old_log_prob=old, log_prob=new, advantages=adv, response_mask=mask, config=cfg)
        loss.backward()
        new.grad = None

    ours, theirs = time_pair(
        lambda: run(compute_policy_loss_dynamic_clip, scheduled_cfg),
        lambda: run(compute_policy_loss_vanilla, vanilla_cfg),
        repeats,
        device,
    )
    return summary(ours, theirs, tokens=int(mask.sum()))


def bench_ppo_loss(batch: int, length: int, repeats: int, device: str, gen: torch.Generator) -> dict:
    resp_lens = torch.randint(length // 4, length + 1, (batch,), generator=gen)
    prompt_lens = torch.full((batch,), PROMPT_LEN)
    attention = torch.zeros(batch, PROMPT_LEN + length, dtype=torch.long)
    for i in range(batch):
        attention[i, :PROMPT_LEN] = 1
        attention[i, PROMPT_LEN : PROMPT_LEN + int(resp_lens[i])] = 1
    response_mask = attention[:, PROMPT_LEN:].clone()
    old = torch.randn(batch, length, generator=gen) * 0.1 - 1.0
    flat = (torch.randn(int((prompt_lens + resp_lens).sum()), generator=gen) * 0.2 - 1.0).to(device)
    flat.requires_grad_(True)

    def data(with_eps: bool) -> TensorDict:
        td = TensorDict(
            {
                "prompts": torch.ones(batch, PROMPT_LEN, dtype=torch.long),
                "responses": torch.ones(batch, length, dtype=torch.long),
                "attention_mask": attention,
                "response_mask": response_mask,
                "old_log_probs": old,
                "advantages": torch.randn(batch, 1, generator=gen).expand(batch, length).contiguous(),
            },
            batch_size=[batch],
        ).to(device)
        tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=int(response_mask.sum()), global_batch_size=batch)
        if with_eps:
            tu.assign_non_tensor_data(td, CLIP_EPS_KEY, EPS)
        return td

    ours_fn = ScheduledClipLoss(actor_config(LOSS_MODE))
    stock_fn = partial(ppo_loss, config=actor_config("vanilla"))
    ours_data, stock_data = data(True), data(False)

    def run(fn, td):
        loss, _ = fn(model_output={"log_probs": flat}, data=td)
        loss.backward()
        flat.grad = None

    ours, theirs = time_pair(lambda: run(ours_fn, ours_data), lambda: run(stock_fn, stock_data), repeats, device)
    return summary(ours, theirs, tokens=int(response_mask.sum()))


def summary(ours: list[float], theirs: list[float], *, tokens: int) -> dict:
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    return {
        "dynamic_clip_median_ms": 1e3 * med_ours,
        "vanilla_median_ms": 1e3 * med_theirs,
        "ratio_of_medians": med_ours / med_theirs,
        "dynamic_clip_iqr_ms": 1e3 * (statistics.quantiles(ours, n=4)[2] - statistics.quantiles(ours, n=4)[0]),
        "vanilla_iqr_ms": 1e3 * (statistics.quantiles(theirs, n=4)[2] - statistics.quantiles(theirs, n=4)[0]),
        "valid_tokens": tokens,
        "repeats": len(ours),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--length", type=int, default=3072, help="response length (tokens)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: on a shared host more threads measure contention; 0 = torch's default)",
    )
    parser.add_argument("--goal", type=float, default=1.05)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    results = {
        "policy_loss": bench_policy_loss(args.batch, args.length, args.repeats, args.device, gen),
        "ppo_loss": bench_ppo_loss(args.batch, args.length, args.repeats, args.device, gen),
    }
    report = {
        "shape": [args.batch, args.length],
        "clip_eps": EPS,
        "seed": args.seed,
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "torch_threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "verl": verl.__version__},
        "goal_ratio": args.goal,
        "results": results,
    }
    print(f"shape {args.batch} x {args.length}, device {report['device']}, {args.repeats} interleaved repeats")
    for level, res in results.items():
        verdict = "OK" if res["ratio_of_medians"] <= args.goal else "ABOVE GOAL"
        print(
            f"{level:12s} dynamic clip {res['dynamic_clip_median_ms']:9.2f} ms   vanilla {res['vanilla_median_ms']:9.2f} ms"
            f"   ratio {res['ratio_of_medians']:.3f}  ({verdict}, goal <= {args.goal})"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

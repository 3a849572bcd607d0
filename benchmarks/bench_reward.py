"""How long the GuardReasoner-VL reward takes for one paper GRPO step (512 prompts x 16 = 8,192 outputs).

The outputs are guard-shaped (``<think>`` reasoning then a ``<result>`` block, ~900 characters,
about the released models' ~210 tokens) with a realistic mix: mostly well-formed answers, some wrong
labels, some malformed or gaming outputs. Everything runs in this process, pinned to one CPU core.
The score function is the one verl calls (:func:`rewards.guardreasoner_vl.compute_score`).

Usage::

    python benchmarks/bench_reward.py                      # 8,192 outputs, 7 repeats
    python benchmarks/bench_reward.py --json /tmp/bench_reward.json --length-unit tokens

Prints outputs/s and milliseconds per step (best and median wall time of the repeats, and the best
CPU time, which other load on a shared machine inflates less); ``--json`` also writes the counts,
seed, versions and device.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a checkout

from rewards.grammar import format_output, format_verdict  # noqa: E402
from rewards.guardreasoner_vl import compute_score, parse_verdict  # noqa: E402

STEP_OUTPUTS = 512 * 16
TARGET_MS = 50.0

_WORDS = (
    "the user asks for instructions about a topic that could cause harm the assistant replies with "
    "general safety information and declines to give operational details which keeps the answer "
    "within policy the image shows a person holding a device near a crowded street the request "
    "mentions weapons chemicals privacy medical advice self harm fraud and the context suggests intent"
).split()

# kind -> share of a step. "correct"/"wrong" are well-formed; the rest earn no (or partial) credit.
MIX = {
    "correct": 0.62,
    "wrong_request": 0.10,
    "wrong_response": 0.08,
    "no_think": 0.05,
    "ambiguous_slot": 0.04,
    "two_results": 0.03,
    "unclosed_result": 0.03,
    "label_line_outside": 0.03,
    "truncated": 0.02,
}


def _reasoning(rng: random.Random, n_chars: int) -> str:
    steps, length, step = [], 0, 1
    while length < n_chars:
        sentence = f"## Reasoning Step {step}: " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 18))) + "."
        steps.append(sentence)
        length += len(sentence) + 1
        step += 1
    return "\n".join(steps)


def _flip(label: str) -> str:
    return "unharmful" if label == "harmful" else "harmful"


def make_step(rng: random.Random, n: int) -> tuple[list[str], list[str], Counter]:
    """``n`` guard outputs, their ground truths, and how many of each kind."""
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=n)
    outputs, truths = [], []
    for kind in kinds:
        request = rng.choice(("harmful", "unharmful"))
        response = rng.choice(("harmful", "unharmful", None))
        reasoning = _reasoning(rng, max(200, int(rng.gauss(800, 200))))
        pred_req = _flip(request) if kind == "wrong_request" else request
        pred_resp = "harmful" if kind == "wrong_response" and response != "harmful" else response
        if kind == "wrong_response" and response == "harmful":
            pred_resp = "unharmful"
        text = format_output(reasoning, pred_req, pred_resp)
        if kind == "no_think":
            text = text.replace("<think>\n", "", 1).replace("\n</think>", "", 1)
        elif kind == "ambiguous_slot":
            text = text.replace(f"Request: {pred_req}", "Request: harmful/unharmful", 1)
        elif kind == "two_results":
            text += "\n<result>\n" + format_verdict(_flip(pred_req), pred_resp) + "\n</result>"
        elif kind == "unclosed_result":
            text = text.replace("</result>", "", 1)
        elif kind == "label_line_outside":
            text = text.replace("</think>", f"Request: {_flip(pred_req)}\n</think>", 1)
        elif kind == "truncated":
            text = text[: rng.randint(50, len(text) - 40)]
        outputs.append(text)
        truths.append(format_verdict(request, response))
    return outputs, truths, Counter(kinds)


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=STEP_OUTPUTS, help="outputs per step (default: 512 x 16 = 8192)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (default: 7)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: 0)")
    parser.add_argument("--length-unit", choices=("chars", "tokens"), default="chars")
    parser.add_argument("--variant", choices=("paper", "released"), default="paper")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    pinning = _pin_one_core()
    rng = random.Random(args.seed)
    outputs, truths, kinds = make_step(rng, args.n)
    # token counts as a rollout would report them (~4.3 characters per token for this text)
    tokens = [max(1, round(len(text) / 4.3)) for text in outputs]
    options = {"length_unit": args.length_unit, "variant": args.variant}

    def score_step() -> list[dict]:
        if args.length_unit == "tokens":
            return [
                compute_score("bench", text, gt, None, response_length_tokens=n_tok, **options)
                for text, gt, n_tok in zip(outputs, truths, tokens)
            ]
        return [compute_score("bench", text, gt, None, **options) for text, gt in zip(outputs, truths)]

    results = score_step()  # warm-up (fills the option / ground-truth caches once)
    step_seconds, step_cpu_seconds, parse_seconds = [], [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        score_step()
        step_seconds.append(time.perf_counter() - start)
        step_cpu_seconds.append(time.process_time() - cpu_start)  # robust to other load on a shared machine
        start = time.perf_counter()
        for text in outputs:
            parse_verdict(text)
        parse_seconds.append(time.perf_counter() - start)

    best, median = min(step_seconds), statistics.median(step_seconds)
    mean_chars = statistics.fmean(len(t) for t in outputs)
    figures = {
        "benchmark": "reward_step",
        "outputs_per_step": args.n,
        "repeats": args.repeats,
        "seed": args.seed,
        "options": options,
        "mix": dict(sorted(kinds.items())),
        "mean_chars": round(mean_chars, 1),
        "mean_tokens": round(statistics.fmean(tokens), 1),
        "mean_score": round(statistics.fmean(r["score"] for r in results), 4),
        "acc": round(statistics.fmean(r["acc"] for r in results), 4),
        "format_ok": round(statistics.fmean(r["format_ok"] for r in results), 4),
        "ms_per_step_best": round(best * 1e3, 2),
        "ms_per_step_median": round(median * 1e3, 2),
        "cpu_ms_per_step_best": round(min(step_cpu_seconds) * 1e3, 2),
        "outputs_per_s_best": round(args.n / best),
        "us_per_output_best": round(best / args.n * 1e6, 2),
        "parse_only_ms_per_step_best": round(min(parse_seconds) * 1e3, 2),
        "target_ms_per_step": TARGET_MS,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": f"CPU: {_cpu_name()} ({pinning}, load average {os.getloadavg()[0]:.1f})",
    }
    print(f"reward for one GRPO step: {args.n} outputs, mean {mean_chars:.0f} chars, mix {dict(kinds)}")
    print(f"  {figures['ms_per_step_best']:.1f} ms per step best, {figures['ms_per_step_median']:.1f} ms median "
          f"({figures['outputs_per_s_best']:,} outputs/s, {figures['us_per_output_best']:.2f} us each; "
          f"parse alone {figures['parse_only_ms_per_step_best']:.1f} ms); target < {TARGET_MS:.0f} ms")  # fmt: skip
    print(f"  CPU time per step (best): {figures['cpu_ms_per_step_best']:.1f} ms")
    print(f"  mean score {figures['mean_score']}, acc {figures['acc']}, format_ok {figures['format_ok']}")
    print(f"  {figures['device']}; Python {figures['python']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"  wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

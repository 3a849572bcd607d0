"""Figures and checks of a GRPO run, read from verl's own per-step metrics (its ``file`` logger).

One module for every GPU script (the hf-rollout resume run and the vLLM smoke run), so both report
the same figures, computed the same way, and check the same things:

- **time per step**, split the way verl's sync trainer times it: rollout (``timing_s/gen``: waiting for
  the agent loop's generations), old log-prob, actor update, weight sync to the rollout, checkpoint,
  and the rest of the step (``other_s``: reward, advantages, data loading, start-up work of a run's
  first step); validation is timed apart (``timing_s/testing``);
- **tokens per second**: rollout = response tokens / rollout time; update = prompt + response tokens /
  update time (verl's ``timing_per_token_ms``);
- **memory**: the actor's peak accelerator memory as verl logs it (``actor/perf/max_memory_allocated_gb``;
  under the CPU backend that is the process's peak RSS), plus what ``monitor.py`` sampled from outside;
- **checks**: every expected step was trained; ``actor/clip_eps`` (the clip the actor workers used,
  returned by the loss) equals the schedule at every step, the resumed one included; every reward key
  (:data:`rewards.guardreasoner_vl.REWARD_KEYS`) is logged per validation source; every validation
  source has its F1 (``val-core/<source>/request_f1``, and ``response_f1`` where it has responses).

A step's first time in a run (step 1, and the first step after a resume) includes start-up work
(Ray actors of the agent loop, CUDA warm-up); ``warm`` holds the figures of the other steps.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from statistics import median
from typing import Any, Iterable, Mapping, Optional, Sequence

#: Phases inside verl's ``timing_s/step``, in the order the sync trainer runs them (ours -> verl's key).
PHASES = {
    "rollout_s": "timing_s/gen",
    "reward_s": "timing_s/reward",
    "old_log_prob_s": "timing_s/old_log_prob",
    "ref_s": "timing_s/ref",
    "advantage_s": "timing_s/adv",
    "update_s": "timing_s/update_actor",
    "weight_sync_s": "timing_s/update_weights",
    "checkpoint_s": "timing_s/save_checkpoint",
}
CLIP_KEY = "actor/clip_eps"
REWARD_MEAN_KEY = "critic/score/mean"
ACTOR_PEAK_KEY = "actor/perf/max_memory_allocated_gb"
#: Tolerance on the logged clip: it is the float the worker used, round-tripped through JSON.
CLIP_TOLERANCE = 1e-9


class MetricsError(ValueError):
    """A metrics file is missing or unreadable; the message names it."""


def load_records(path: Path) -> list[dict]:
    """The ``{"step": N, "data": {...}}`` lines verl's file logger wrote."""
    path = Path(path)
    if not path.is_file():
        raise MetricsError(f"{path}: no metrics file (did the run start its trainer?)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records.append({"step": int(record["step"]), "data": dict(record["data"])})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise MetricsError(f"{path}:{number}: not a verl metrics line ({err})") from None
    return records


def training_steps(records: Iterable[dict]) -> dict[int, dict]:
    """Metrics of the steps that ran an actor update, by step."""
    return {r["step"]: r["data"] for r in records if "actor/pg_loss" in r["data"]}


def validations(records: Iterable[dict]) -> dict[int, dict]:
    """Validation metrics (``val-core/``, ``val-aux/``) by step."""
    out: dict[int, dict] = {}
    for record in records:
        val = {k: v for k, v in record["data"].items() if k.startswith(("val-core/", "val-aux/"))}
        if val:
            out.setdefault(record["step"], {}).update(val)
    return out


def _number(metrics: Mapping[str, Any], key: str) -> Optional[float]:
    value = metrics.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _per_second(metrics: Mapping[str, Any], key: str) -> Optional[float]:
    ms = _number(metrics, key)
    return 1000.0 / ms if ms else None


def step_figures(metrics: Mapping[str, Any]) -> dict[str, Optional[float]]:
    """Time split, tokens/s, memory, clip and reward of one training step."""
    out: dict[str, Optional[float]] = {"step_s": _number(metrics, "timing_s/step")}
    for name, key in PHASES.items():
        if key in metrics:
            out[name] = _number(metrics, key)
    if out["step_s"] is not None:
        out["other_s"] = out["step_s"] - sum(v for k, v in out.items() if k in PHASES and v is not None)
    out.update(
        validation_s=_number(metrics, "timing_s/testing"),
        rollout_tokens_per_s=_per_second(metrics, "timing_per_token_ms/gen"),
        update_tokens_per_s=_per_second(metrics, "timing_per_token_ms/update_actor"),
        tokens=_number(metrics, "perf/total_num_tokens"),
        response_length_mean=_number(metrics, "response_length/mean"),
        actor_peak_memory_gib=_number(metrics, ACTOR_PEAK_KEY),
        clip_eps=_number(metrics, CLIP_KEY),
        reward_mean=_number(metrics, REWARD_MEAN_KEY),
        rollout_actor_probs_diff_max=_number(metrics, "training/rollout_probs_diff_max"),
    )
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in out.items()}


def scheduled_clips(config: Any, steps: Iterable[int]) -> dict[int, float]:
    """The dynamic clip the actor must use at each step, from a composed run config (the recipe's own
    schedule code, S = ``guardreasoner.clip_schedule.total_steps`` or the trainer's total steps)."""
    from recipe.guardreasoner_vl.recipe_config import load_guardreasoner_config

    section = load_guardreasoner_config(config)
    total = int(config.trainer.total_training_steps)
    return {step: section.clip_schedule.value(step, total) for step in steps}


def reward_keys() -> tuple[str, ...]:
    from rewards.guardreasoner_vl import REWARD_KEYS

    return tuple(REWARD_KEYS)


def check_validation(val: Mapping[str, Any], sources: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Problems with one validation's metrics: a missing reward key or F1 per source."""
    problems = []
    for source in sources:
        missing = [k for k in keys if f"val-aux/{source}/{k}/mean@1" not in val and f"val-core/{source}/{k}/mean@1" not in val]
        if missing:
            problems.append(f"validation of {source}: reward keys not logged: {', '.join(missing)}")
        f1 = val.get(f"val-core/{source}/request_f1")
        if not isinstance(f1, (int, float)) or not 0.0 <= f1 <= 1.0:
            problems.append(f"validation of {source}: val-core/{source}/request_f1 is {f1!r}, expected a number in [0, 1]")
        has_response = val.get(f"val-aux/{source}/has_response/mean@1")
        if isinstance(has_response, (int, float)) and has_response > 0:
            f1 = val.get(f"val-core/{source}/response_f1")
            if not isinstance(f1, (int, float)) or not 0.0 <= f1 <= 1.0:
                problems.append(f"validation of {source}: val-core/{source}/response_f1 is {f1!r}, expected a number in [0, 1]")
    return problems


def grpo_report(
    runs: Mapping[str, tuple[Any, Path]],
    *,
    expected_clip: Mapping[int, float],
    expected_steps: Mapping[str, Sequence[int]],
    val_sources: Sequence[str],
    val_runs: Sequence[str] = (),
) -> dict[str, Any]:
    """Figures and checks of one or more ``main_grpo`` runs (e.g. ``first`` then ``resumed``).

    ``runs`` maps a run's name to its :class:`monitor.RunResult` and metrics file; ``val_runs`` names the
    runs that must have validated (with F1 for every ``val_sources``).
    """
    problems: list[str] = []
    steps: list[dict[str, Any]] = []
    run_summary: dict[str, Any] = {}
    validation: dict[str, Any] = {}
    keys = reward_keys()
    for name, (result, metrics_path) in runs.items():
        run_summary[name] = {
            "exit": result.returncode,
            "wall_s": round(result.wall_s, 1),
            "peak_host_pss_gib": round(result.peak_host_pss_gib, 2),
            "peak_host_rss_gib": round(result.peak_host_rss_gib, 2),
            "peak_gpu_used_gib": None if result.peak_gpu_used_gib is None else round(result.peak_gpu_used_gib, 2),
            "log": result.log.name,
        }
        if result.returncode != 0:
            problems.append(f"run {name} exited {result.returncode} (log {result.log})")
        try:
            records = load_records(metrics_path)
        except MetricsError as err:
            problems.append(str(err))
            continue
        trained = training_steps(records)
        want = list(expected_steps.get(name, []))
        if sorted(trained) != sorted(want):
            problems.append(f"run {name} trained steps {sorted(trained)}, expected {want}")
        for index, step in enumerate(sorted(trained)):
            entry = {"step": step, "run": name, "first_of_run": index == 0, **step_figures(trained[step])}
            if step in expected_clip:
                entry["clip_eps_expected"] = expected_clip[step]
                if entry["clip_eps"] is None or abs(entry["clip_eps"] - expected_clip[step]) > CLIP_TOLERANCE:
                    problems.append(f"step {step} ({name}): actor/clip_eps {entry['clip_eps']} != schedule {expected_clip[step]}")
            steps.append(entry)
        vals = validations(records)
        if name in val_runs and not vals:
            problems.append(f"run {name} logged no validation metrics")
        for step, val in vals.items():
            problems += check_validation(val, val_sources, keys)
            validation[str(step)] = {k: round(float(v), 6) for k, v in sorted(val.items()) if k.startswith("val-core/")}
    warm = [s for s in steps if not s["first_of_run"]]
    report: dict[str, Any] = {
        "ok": not problems,
        "problems": problems,
        "steps": steps,
        "clip_eps": {str(s["step"]): s["clip_eps"] for s in steps},
        "clip_eps_expected": {str(k): v for k, v in sorted(expected_clip.items())},
        "reward_mean": {str(s["step"]): s["reward_mean"] for s in steps},
        "validation": validation,
        "runs": run_summary,
        "warm": summarize(warm),
        "peak_actor_memory_gib": _max(s["actor_peak_memory_gib"] for s in steps),
        "peak_host_pss_gib": _max(r["peak_host_pss_gib"] for r in run_summary.values()),
        "peak_host_rss_gib": _max(r["peak_host_rss_gib"] for r in run_summary.values()),
        "peak_gpu_used_gib": _max(r["peak_gpu_used_gib"] for r in run_summary.values()),
    }
    return report


def summarize(steps: Sequence[Mapping[str, Any]]) -> dict[str, Optional[float]]:
    """Median of each figure over ``steps`` (the warm steps), or an empty dict."""
    if not steps:
        return {}
    names = ["step_s", "rollout_s", "old_log_prob_s", "update_s", "weight_sync_s", "rollout_tokens_per_s", "update_tokens_per_s"]
    out = {}
    for name in names:
        values = [s[name] for s in steps if s.get(name) is not None]
        out[name] = round(median(values), 4) if values else None
    out["steps"] = [s["step"] for s in steps]
    return out


def _max(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def device_name(device: str) -> str:
    """``NVIDIA H200`` (the GPU's name) on cuda; the processor on cpu."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda (not visible)"
    return f"cpu: {platform.processor() or platform.machine()}"


def versions() -> dict[str, str]:
    """Versions of the stack the run imported (the carried set on a bare host)."""
    import importlib

    out = {"python": platform.python_version()}
    for name in ("torch", "verl", "ray", "transformers", "transfer_queue", "tensordict", "vllm"):
        try:
            out[name] = str(getattr(importlib.import_module(name), "__version__", "?"))
        except ImportError:
            continue
    return out

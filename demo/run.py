"""Run the whole GRPO recipe on the bundled sample, on a CPU, in a few minutes.

What it does, each step with the project's own code:

1. builds the tiny random Qwen2.5-VL (``make-tiny-model``) unless ``--model`` names one;
2. writes RL parquet: the bundled GuardReasoner-VLTrain sample (text, image and text-image rows)
   with 20% safety-aware concatenations for training, and a few bundled mini benchmarks (one
   ``data_source`` each) for validation;
3. runs the real entry point ``python -m recipe.guardreasoner_vl.main_grpo`` with the CPU backend
   (``VERL_PLATFORM=cpu``, the ``hf`` rollout): GRPO with the dynamic clip and the GuardReasoner
   reward, validation before and after training, a checkpoint at the end;
4. prints where the checkpoint, the metrics and the validation generations are.

The model is random, so the numbers mean nothing; the run proves the pipeline works. On a GPU
cluster the same entry point with a real model and vLLM is the real job (``examples/grpo/``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

#: Mini benchmarks used for validation by default: a text prompt set, an image set, a text-image
#: set with responses and a text response set (each row is generated once per validation).
DEFAULT_VAL_BENCHMARKS = ("ToxicChat", "HarmImageTest", "SPA_VL_Eval", "BeaverTails")
REPO_ROOT = Path(__file__).resolve().parents[1]


def prepare_data(out: Path, val_benchmarks: Sequence[str]) -> tuple[Path, Path]:
    """Write ``train.parquet`` (sample + 20% concatenations) and ``val.parquet`` (mini benchmarks)."""
    from data_prep.concat import DEFAULT_FRACTION, concatenate
    from data_prep.readers import read_benchmark, read_vltrain
    from data_prep.writers import ImageOptions, write_rl
    from demo.sample import SAMPLE_DIR, VLTRAIN_DIR

    # Few visual tokens per image keep the tiny model's prompts short on a CPU.
    options = ImageOptions(max_pixels=16 * 28 * 28, min_pixels=4 * 28 * 28)
    out.mkdir(parents=True, exist_ok=True)
    train_path, val_path = out / "train.parquet", out / "val.parquet"
    pool = list(read_vltrain(VLTRAIN_DIR))
    concatenated = list(concatenate(pool, fraction=DEFAULT_FRACTION, seed=0))
    train = write_rl([*pool, *concatenated], train_path, split="train", options=options)
    val_records = []
    for name in val_benchmarks:
        path = SAMPLE_DIR / "benchmarks" / f"{name}.json"
        if not path.is_file():
            available = sorted(p.stem for p in (SAMPLE_DIR / "benchmarks").glob("*.json"))
            raise ValueError(f"no bundled mini benchmark {name!r}; available: {', '.join(available)}")
        val_records.extend(read_benchmark(name, path))
    val = write_rl(val_records, val_path, split="val", options=options)
    print(
        f"data: {train.rows_out} training rows ({len(concatenated)} concatenated) -> {train_path}; "
        f"{val.rows_out} validation rows from {len(val_benchmarks)} benchmarks -> {val_path}"
    )
    return train_path, val_path


def training_overrides(model: Path, train: Path, val: Path, out: Path, steps: int) -> list[str]:
    """The demo's Hydra overrides on top of the recipe config and the CPU backend's overrides."""
    from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_OVERRIDES

    metrics = out / "metrics.jsonl"
    return [
        *CPU_OVERRIDES,
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        # Small enough for a CPU: 4 prompts x 2 samples per step, short responses.
        "data.train_batch_size=4",
        "data.max_prompt_length=1024",
        "data.max_response_length=32",
        "data.dataloader_num_workers=0",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=16384",
        "reward.num_workers=1",
        f"trainer.total_training_steps={steps}",
        "trainer.val_before_train=True",
        f"trainer.test_freq={steps}",
        f"trainer.save_freq={steps}",
        f"trainer.default_local_dir={out / 'checkpoints'}",
        f"trainer.validation_data_dir={out / 'val_generations'}",
        "trainer.logger=[console,file]",
        "trainer.project_name=guardreasoner_vl_demo",
        "trainer.experiment_name=tiny_cpu",
        # verl's file logger reads its path from the environment of the task-runner actor.
        f"++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={metrics}",
    ]


def run_demo(
    out: Path,
    *,
    steps: int = 3,
    model: Optional[Path] = None,
    val_benchmarks: Sequence[str] = DEFAULT_VAL_BENCHMARKS,
    overrides: Sequence[str] = (),
    dry_run: bool = False,
) -> int:
    """Prepare the model and data under ``out``, run GRPO (unless ``dry_run``) and print a summary.

    Returns the trainer's exit code (0 on success).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        from demo.tiny_model import build_tiny_model

        model = out / "tiny_model"
        if not (model / "config.json").is_file():
            build_tiny_model(model, seed=0)
        print(f"model: tiny random Qwen2.5-VL -> {model}")
    elif not (Path(model) / "config.json").is_file():
        raise FileNotFoundError(f"--model {model}: no config.json there")
    model = Path(model).resolve()
    train, val = prepare_data(out / "data", val_benchmarks)

    from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_ENV

    overrides = training_overrides(model, train, val, out, steps) + list(overrides)
    command = [sys.executable, "-m", "recipe.guardreasoner_vl.main_grpo", *overrides]
    metrics = out / "metrics.jsonl"
    env = {
        **os.environ,
        **CPU_ENV,
        "VERL_FILE_LOGGER_PATH": str(metrics),
        "WANDB_MODE": os.environ.get("WANDB_MODE", "disabled"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    print("command:", " ".join(f"{k}={v}" for k, v in CPU_ENV.items()), " \\\n    ".join(command[1:]), flush=True)
    if dry_run:
        return 0
    if metrics.exists():
        metrics.unlink()  # the file logger appends; one run per file
    log_path = out / "train.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, env=env, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:  # show the run and keep a copy
            sys.stdout.write(line)
            log.write(line)
        code = proc.wait()
    if code != 0:
        print(f"\ndemo: training failed (exit {code}); full log: {log_path}", file=sys.stderr)
        return code
    _print_summary(out, metrics, log_path)
    return 0


def _print_summary(out: Path, metrics: Path, log_path: Path) -> None:
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []
    clip = {r["step"]: r["data"]["actor/clip_eps"] for r in records if "actor/clip_eps" in r["data"]}
    last_val = next((r["data"] for r in reversed(records) if any(k.startswith("val-core/") for k in r["data"])), {})
    f1 = {k: v for k, v in last_val.items() if k.endswith("_f1")}
    print("\n=== GuardReasoner-VL demo finished ===")
    print(f"clip ratio used by the actor per step: {clip}")
    for key in sorted(f1):
        print(f"  {key} = {f1[key]:.3f}")
    print(f"checkpoints:            {out / 'checkpoints'}")
    print(f"metrics (JSON lines):   {metrics}")
    print(f"validation generations: {out / 'val_generations'}")
    print(f"training log:           {log_path}")

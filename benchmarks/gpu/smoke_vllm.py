"""GPU smoke test of the launch script as users run it: 2 GRPO steps of ``examples/grpo/run_grpo.sh``.

For the first GPU host that has verl's GPU stack (``pip install -e ".[gpu]"``: vLLM, flash-attn):
one GPU, a local model folder (``--model`` or ``$MODEL_PATH``: an R-SFT export, a released
checkpoint, or any Qwen2.5-VL folder), the recipe's own defaults for the GPU (vLLM rollout,
flash-attention, padding removal), the bundled sample as data. Small sizes: 8 prompts x 4 samples,
responses up to 256 tokens, validation at step 2 on two mini benchmarks.

Before anything starts it composes the exact config ``run_grpo.sh`` would launch (its
``PRINT_OVERRIDES=1``) and passes it through the project's config check as the entry point will run it
(``CHECK_CONFIG=full``: also the model folder, the data, vLLM and flash-attn on this machine). The
launch script's own defaults stay, its actor offload rule included (on for 3B on one GPU: the actor's
states and vLLM's share would not fit 80 GB together; ``ACTOR_OFFLOAD=False`` turns it off).
After the run it checks, from verl's own metrics (``figures.py``, shared with ``grpo_resume.py``):
both steps trained; ``actor/clip_eps`` equals the dynamic-clip schedule at each step; every key of the
reward (``rewards.guardreasoner_vl.REWARD_KEYS``) is logged per validation source; every source has its
F1. It prints ONE JSON line of figures (step time and its split, rollout and update tokens/s, peak
memory) and the checks, and exits 1 if a check failed.

``--check-only`` stops after the config check of the config alone (``CHECK_CONFIG=1``: no GPU, vLLM or
flash-attn needed; the test suite runs it on a CPU).
``DEVICE=cpu`` runs the same through the CPU backend (tiny model, ``hf`` rollout instead of vLLM): the
rehearsal of everything but vLLM.

Usage (from the repository root)::

    MODEL_PATH=/models/qwen2.5-vl-3b python benchmarks/gpu/smoke_vllm.py          # GPU host with verl[vllm,fsdp]
    python benchmarks/gpu/smoke_vllm.py --check-only --model /models/qwen2.5-vl-3b  # anywhere
    DEVICE=cpu python benchmarks/gpu/smoke_vllm.py                                 # CPU rehearsal
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gpu import common, figures, workload  # noqa: E402
from benchmarks.gpu.grpo_resume import SCHEDULE_TOTAL_STEPS  # noqa: E402

RUN_GRPO = REPO_ROOT / "examples" / "grpo" / "run_grpo.sh"
STEPS = 2
#: Sizes of the smoke run per device (prompts per step, samples per prompt, response tokens).
SIZES = {"cuda": (8, 4, 256), "cpu": (4, 2, 16)}


def smoke_overrides(device: str, metrics: Path) -> list[str]:
    """Hydra overrides appended to run_grpo.sh's own (sizes, steps, validation, logging)."""
    prompts, samples, response = SIZES[device]
    return [
        f"data.train_batch_size={prompts}",
        f"data.max_response_length={response}",
        "data.max_prompt_length=2048",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.rollout.n={samples}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={prompts}",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        f"guardreasoner.clip_schedule.total_steps={SCHEDULE_TOTAL_STEPS}",
        f"trainer.total_training_steps={STEPS}",
        "trainer.val_before_train=False",
        f"trainer.test_freq={STEPS}",
        "trainer.save_freq=-1",
        *common.file_logger_overrides(metrics),
    ]


def script_env(device: str, model: Path, train: Path, val: Path, work: Path, base: dict) -> dict:
    """run_grpo.sh's variables: one GPU, this model and data, checkpoints in the work folder."""
    return {
        **base,
        "DEVICE": device,
        "PYTHON": sys.executable,
        "GPUS_PER_NODE": "1",
        "NNODES": "1",
        # Names the run and picks run_grpo.sh's offload rule; a 7B folder wants MODEL_SIZE=7b.
        "MODEL_SIZE": base.get("MODEL_SIZE", "3b"),
        "MODEL_PATH": str(model),
        "TRAIN_FILES": str(train),
        "VAL_FILES": str(val),
        "CKPT_DIR": str(work / "checkpoints"),
        "EXPERIMENT_NAME": f"smoke-{device}",
    }


def composed(env: dict, overrides: Sequence[str]) -> tuple[str, list[str]]:
    """The config name and overrides run_grpo.sh launches with (its PRINT_OVERRIDES=1)."""
    proc = subprocess.run(
        ["bash", str(RUN_GRPO), *overrides], env={**env, "PRINT_OVERRIDES": "1"}, capture_output=True, text=True, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise SystemExit(f"smoke_vllm.py: run_grpo.sh PRINT_OVERRIDES=1 failed:\n{proc.stderr[-3000:]}")
    name, *lines = proc.stdout.splitlines()
    return name, lines


def config_check(env: dict, overrides: Sequence[str], *, this_machine: bool) -> str:
    """run_grpo.sh's own config check on the smoke run's overrides: ``CHECK_CONFIG=full`` (also this
    machine: model folder, data, vLLM and flash-attn installed) before a run, ``1`` (any machine) else."""
    mode = "full" if this_machine else "1"
    proc = subprocess.run(
        ["bash", str(RUN_GRPO), *overrides], env={**env, "CHECK_CONFIG": mode}, capture_output=True, text=True, cwd=REPO_ROOT
    )
    if proc.returncode != 0:
        raise SystemExit(f"smoke_vllm.py: the config check refused the smoke config:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "config ok"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="smoke_vllm.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser, "smoke")
    parser.add_argument("--model", type=Path, default=os.environ.get("MODEL_PATH"), help="local model folder (default $MODEL_PATH; on cpu: the tiny model)")
    parser.add_argument("--check-only", action="store_true", help="compose and check the config, run nothing")
    args = parser.parse_args(argv)
    device = args.device
    work = common.work_dir(args, "smoke")
    base = common.trainer_env(device)
    model = args.model
    if model is None:
        if device == "cuda" and not args.check_only:
            parser.error("give the local model folder: --model PATH or MODEL_PATH=PATH")
        model = workload.build_model("cpu", common.model_dir("cpu"))  # any local Qwen2.5-VL folder will do for the check
    model = Path(model).resolve()
    if not (model / "config.json").is_file():
        parser.error(f"--model {model}: no config.json there (a local Hugging Face model folder is needed)")
    data = workload.build_rl_data(device, work / "data")
    metrics = work / "smoke.metrics.jsonl"
    env = script_env(device, model, data.train, data.val, work, base)
    overrides = smoke_overrides(device, metrics)

    config_name, launched = composed(env, overrides)
    checked = config_check(env, overrides, this_machine=not args.check_only)
    print(f"[smoke] {checked}", flush=True)
    from recipe.guardreasoner_vl.check_config import compose

    config = compose(config_name, launched)
    clips = figures.scheduled_clips(config, range(1, STEPS + 1))
    rollout = str(config.actor_rollout_ref.rollout.name)
    if args.check_only:
        print(f"[smoke] --check-only: {config_name}, rollout {rollout}, {len(launched)} overrides; clip schedule {clips}")
        return 0

    result = common.launch("smoke", ["bash", str(RUN_GRPO), *overrides], env=env, work=work, metrics=metrics)
    report = figures.grpo_report(
        {"smoke": (result, metrics)},
        expected_clip=clips,
        expected_steps={"smoke": list(range(1, STEPS + 1))},
        val_sources=data.val_sources,
        val_runs=["smoke"],
    )
    prompts, samples, response = SIZES[device]
    report.update(
        what="smoke_vllm",
        date=dt.date.today().isoformat(),
        device=figures.device_name(device),
        model=str(model),
        config=config_name,
        settings={
            "prompts_per_step": prompts,
            "samples_per_prompt": samples,
            "max_response_tokens": response,
            "gpu_memory_utilization": config.actor_rollout_ref.rollout.gpu_memory_utilization,
            "actor_offload": config.actor_rollout_ref.actor.fsdp_config.param_offload,
        },
        rollout=rollout,
        versions=figures.versions(),
    )
    return common.emit(report, args.json, failed=[result], metrics={"smoke": metrics})


if __name__ == "__main__":
    sys.exit(main())

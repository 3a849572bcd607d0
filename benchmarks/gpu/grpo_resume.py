"""GRPO on one GPU through the recipe's real entry point, with a checkpoint and a resume, measured.

What it runs (``DEVICE=cuda``, the default; ``DEVICE=cpu`` runs the same on the tiny model through the
CPU backend, which is how it is rehearsed and tested):

1. builds the model (``workload.py``: random Qwen2.5-VL-3B dimensions in bf16 on cuda, the tiny model
   on cpu) and RL parquet from the bundled sample;
2. ``python -m recipe.guardreasoner_vl.main_grpo`` for steps 1-2 on one GPU: verl's v1 sync trainer
   with Ray, the TransferQueue, the colocated FSDP2 actor (sdpa attention, no padding removal: no
   flash-attn on the host) and the ``hf`` rollout, the dynamic clip, and a checkpoint at step 2;
3. the same command resumed from that checkpoint for step 3, then validation (F1 per benchmark).

The clip schedule's S is fixed at 4 (``guardreasoner.clip_schedule.total_steps=4``) so that both runs
share one schedule and step 3's clip is not 0. The figures come from verl's own metrics (its file
logger), read by ``figures.py``; host and GPU memory of the whole process tree are sampled from
outside (``monitor.py``).

It prints ONE JSON line (and writes it, indented, to ``--json``): per step the time split into rollout,
old log-prob and update (plus weight sync and checkpoint), rollout and update tokens/s, peak GPU
memory; host memory; ``actor/clip_eps`` per step next to the schedule's value, for the resumed step
too; reward mean; the validation F1. It exits 1, listing the problems, if a run failed, a step is
missing, a clip differs from the schedule, or the validation lacks a reward key or an F1.

Usage (from the repository root; ``run.sh`` puts the carried wheels on the path)::

    bash benchmarks/gpu/run.sh grpo                                   # GPU host
    DEVICE=cpu bash benchmarks/gpu/run.sh grpo --json benchmarks/results/grpo_resume_cpu_rehearsal.json
    python benchmarks/gpu/grpo_resume.py --help
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gpu import common, figures, monitor, workload  # noqa: E402

#: The schedule's S, fixed so the two runs share it and step 3's clip is not 0.
SCHEDULE_TOTAL_STEPS = 4
CONFIG_NAME = "guardreasoner_vl_grpo"


def device_overrides(device: str) -> list[str]:
    """What running on one GPU of a bare host (or the CPU backend) needs on top of the recipe config."""
    if device == "cpu":
        from recipe.guardreasoner_vl.cpu_backend.overrides import CPU_OVERRIDES

        return list(CPU_OVERRIDES)
    return [
        "trainer.device=cuda",
        "trainer.nnodes=1",
        "trainer.n_gpus_per_node=1",
        # No flash-attn on the host: sdpa attention, and padding removal needs flash-attn's varlen kernels.
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.model.use_remove_padding=False",
        # torch.compile of the log-prob kernels costs compile time at the first step of each run.
        "actor_rollout_ref.actor.use_torch_compile=False",
        # The transformers rollout (no vLLM on the host); it returns log-probs, so verl logs the
        # rollout-vs-actor agreement.
        "actor_rollout_ref.rollout.name=hf",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        "actor_rollout_ref.rollout.calculate_log_probs=True",
        # One storage unit and more logical CPUs than cores: every TransferQueue, agent-loop and reward
        # actor holds a Ray CPU, and a small run needs no more of them.
        "ray_kwargs.ray_init.num_cpus=32",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=1",
    ]


def run_overrides(device: str, model: Path, train: Path, val: Path, work: Path) -> list[str]:
    """Overrides shared by both runs: data, model, sizes, logging."""
    load = workload.workload(device)
    return [
        *device_overrides(device),
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"data.train_batch_size={load.prompts_per_step}",
        "data.max_prompt_length=2048",
        f"data.max_response_length={load.max_response_tokens}",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.rollout.n={load.samples_per_prompt}",
        # One actor update (mini-batch) per step; every sample of a step in one micro-batch.
        f"actor_rollout_ref.actor.ppo_mini_batch_size={load.prompts_per_step}",
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384",
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=16384",
        # A handful of requests per step: one agent-loop worker and one reward worker (each a Ray actor
        # that the first step would otherwise wait to start).
        "actor_rollout_ref.rollout.agent.num_workers=1",
        "reward.num_workers=1",
        f"guardreasoner.clip_schedule.total_steps={SCHEDULE_TOTAL_STEPS}",
        "trainer.val_before_train=False",
        f"trainer.default_local_dir={work / 'checkpoints'}",
        "trainer.project_name=gpu_run",
        f"trainer.experiment_name=grpo-{device}",
    ]


#: Bytes per parameter of a full FSDP checkpoint: fp32 weights and AdamW's two fp32 moments.
FULL_CHECKPOINT_BYTES_PER_PARAM = 12


def checkpoint_contents(model: Path, work: Path, choice: str = "auto") -> list[str]:
    """What the step-2 checkpoint holds. ``full``: weights, optimizer and trainer state (a true resume;
    3B: about 42 GiB); ``model``: weights and trainer state only (15 GiB, about a minute less of saving
    and loading on the GPU host; the resumed run starts with fresh AdamW moments); ``auto``: full when
    the disk has room for it. The JSON says which was used."""
    full, light = ["model", "optimizer", "extra"], ["model", "extra"]
    if choice != "auto":
        return full if choice == "full" else light
    params = sum(f.stat().st_size for f in model.glob("*.safetensors")) // 2  # bf16 files: 2 bytes a parameter
    need = int(params * FULL_CHECKPOINT_BYTES_PER_PARAM * 1.1)
    return full if shutil.disk_usage(work).free > need else light


FIRST_RUN = ["trainer.total_training_steps=2", "trainer.save_freq=2", "trainer.test_freq=-1", "trainer.resume_mode=disable"]


def resumed_run(checkpoint: Path) -> list[str]:
    return [
        "trainer.total_training_steps=3",
        "trainer.save_freq=-1",
        # Validation at the last step (the only step this run trains).
        "trainer.test_freq=1",
        "trainer.resume_mode=resume_path",
        f"trainer.resume_from_path={checkpoint}",
    ]


def checked_config(overrides: Sequence[str], *, this_machine: bool = True) -> Any:
    """The composed run config, through the project's config check as the entry point runs it (the model
    folder, the data and the packages the config needs must be on this machine): a bad override or a
    missing piece fails here, before Ray starts."""
    from recipe.guardreasoner_vl.check_config import check

    return check("grpo", list(overrides), config_name=CONFIG_NAME, this_machine=this_machine).config


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="grpo_resume.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser, "grpo")
    parser.add_argument(
        "--checkpoint", choices=["auto", "full", "model"], default="auto",
        help="step-2 checkpoint contents: full (with optimizer), model (weights only), auto (full if the disk has room)",
    )
    parser.add_argument("--keep-checkpoint", action="store_true", help="keep the step-2 checkpoint (3B: about 42 GiB)")
    args = parser.parse_args(argv)
    device = args.device
    work = common.work_dir(args, "grpo")
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    env = common.trainer_env(device)

    started = time.monotonic()
    model = workload.build_model(device, common.model_dir(device))
    data = workload.build_rl_data(device, work / "data")
    prepare_s = time.monotonic() - started
    print(f"[grpo] model {model}; data in {data.train.parent} ({prepare_s:.0f} s)", flush=True)

    contents = checkpoint_contents(model, work, args.checkpoint)
    shared = [
        *run_overrides(device, model, data.train, data.val, work),
        # verl loads what it saved (load_contents follows save_contents).
        f"actor_rollout_ref.actor.checkpoint.save_contents=[{','.join(contents)}]",
    ]
    checkpoint = work / "checkpoints" / "global_step_2"
    clips = figures.scheduled_clips(checked_config([*shared, *resumed_run(checkpoint)]), [1, 2, 3])
    entry = [sys.executable, "-m", "recipe.guardreasoner_vl.main_grpo"]

    runs: dict[str, tuple[monitor.RunResult, Path]] = {}
    metrics = work / "first.metrics.jsonl"
    runs["first"] = (
        common.launch("first", [*entry, *shared, *FIRST_RUN, *common.file_logger_overrides(metrics)], env=env, work=work, metrics=metrics),
        metrics,
    )
    checkpoint_bytes = None
    if runs["first"][0].returncode == 0 and checkpoint.is_dir():
        checkpoint_bytes = sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file())
        metrics = work / "resumed.metrics.jsonl"
        overrides = [*shared, *resumed_run(checkpoint), *common.file_logger_overrides(metrics)]
        runs["resumed"] = (common.launch("resumed", [*entry, *overrides], env=env, work=work, metrics=metrics), metrics)

    report = figures.grpo_report(
        runs,
        expected_clip=clips,
        expected_steps={"first": [1, 2], "resumed": [3]},
        val_sources=data.val_sources,
        val_runs=["resumed"],
    )
    if "resumed" not in runs:
        report["ok"] = False
        report["problems"].append(f"no resume: the first run failed or saved no checkpoint at {checkpoint}")
    saved = [s for s in report["steps"] if s.get("checkpoint_s") is not None]
    load = workload.workload(device)
    report.update(
        what="grpo_resume",
        date=dt.date.today().isoformat(),
        device=figures.device_name(device),
        model=load.model,
        checkpoint={
            "step": 2,
            "contents": contents,
            "gib": None if checkpoint_bytes is None else round(checkpoint_bytes / monitor.GIB, 3),
            "save_s": saved[0]["checkpoint_s"] if saved else None,
        },
        settings={
            "prompts_per_step": load.prompts_per_step,
            "samples_per_prompt": load.samples_per_prompt,
            "max_response_tokens": load.max_response_tokens,
            "image_tokens": load.image_tokens,
            "rollout": "hf",
            "clip_schedule_total_steps": SCHEDULE_TOTAL_STEPS,
        },
        prepare_s=round(prepare_s, 1),
        versions=figures.versions(),
    )
    if not args.keep_checkpoint:
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
    return common.emit(
        report, args.json, failed=[result for result, _ in runs.values()], metrics={name: path for name, (_, path) in runs.items()}
    )


if __name__ == "__main__":
    sys.exit(main())

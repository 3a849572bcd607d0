"""R-SFT on one GPU: 2 steps of ``examples/sft/run_sft.sh`` (verl's SFT trainer under torchrun), measured.

Same model as ``grpo_resume.py`` (built once per session under ``.gpu_runs/model-<device>``), SFT
parquet of the bundled sample written by the project's writer, 8 rows per step on cuda (4 on cpu),
FSDP2, sdpa attention and no padding removal on cuda (no flash-attn on the host). verl's SFT trainer
logs no step time, so step times are the intervals between its per-step metric lines (its file
logger writes each line as the step ends); step 1 includes the start-up and the CUDA warm-up. The
trainer always saves at its last step: only the model shards are saved here (``checkpoint.save_contents
=[model]``, 15 GB for 3B instead of 45 GB with the optimizer), then deleted.

Prints ONE JSON line (and writes it, indented, to ``--json``): per step the loss, tokens, step time,
tokens/s and the actor's peak GPU memory; time to the first step; peak GPU memory in use and host
memory of the whole process tree. Exits 1 unless both steps logged a finite loss.

Usage (from the repository root)::

    bash benchmarks/gpu/run.sh sft                    # GPU host
    DEVICE=cpu bash benchmarks/gpu/run.sh sft         # CPU rehearsal (tiny model, CPU backend)
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shutil
import socket
import stat
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.gpu import common, figures, monitor, workload  # noqa: E402

STEPS = 2
#: What a bare GPU host needs on top of run_sft.sh's cuda defaults (run_sft.sh sets the CPU ones itself).
CUDA_OVERRIDES = [
    "+model.override_config.attn_implementation=sdpa",
    "model.use_remove_padding=False",
    "engine.use_torch_compile=False",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(work: Path) -> str:
    """``torchrun`` of this interpreter (a small wrapper when its console script is not installed)."""
    beside = Path(sys.executable).parent / "torchrun"
    if beside.is_file():
        return str(beside)
    wrapper = work / "torchrun"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m torch.distributed.run "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def step_table(lines: Sequence[tuple[float, dict]]) -> list[dict[str, Any]]:
    """Per-step figures from the metric lines and the time each appeared (seconds since launch)."""
    rows = []
    previous: Optional[float] = None
    for arrived, record in lines:
        data = record.get("data", {})
        if "train/loss" not in data:
            continue
        tokens = data.get("train/global_tokens")
        step_s = None if previous is None else arrived - previous
        rows.append(
            {
                "step": record.get("step"),
                "loss": data.get("train/loss"),
                "grad_norm": data.get("train/grad_norm"),
                "tokens": tokens,
                "arrived_s": round(arrived, 2),
                "step_s": None if step_s is None else round(step_s, 3),
                "tokens_per_s": None if not (step_s and tokens) else round(tokens / step_s, 1),
                "actor_peak_memory_gib": data.get("perf/max_memory_allocated_gb"),
            }
        )
        previous = arrived
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="sft_steps.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_common_arguments(parser, "sft")
    args = parser.parse_args(argv)
    device = args.device
    work = common.work_dir(args, "sft")
    checkpoints = work / "checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)
    env = common.trainer_env(device)
    load = workload.workload(device)
    model = workload.build_model(device, common.model_dir(device))
    train = workload.build_sft_data(device, work / "data")
    metrics = work / "sft.metrics.jsonl"
    env.update(
        DEVICE=device,
        PYTHON=sys.executable,
        TORCHRUN=torchrun_command(work),
        GPUS_PER_NODE="1",
        MASTER_PORT=str(_free_port()),
        MODEL_PATH=str(model),
        TRAIN_FILES=str(train),
        TRAIN_BATCH_SIZE=str(load.sft_batch),
        CKPT_DIR=str(checkpoints),
        LOGGER="['console','file']",
        EXPERIMENT_NAME=f"sft-{device}",
    )
    overrides = [f"trainer.total_training_steps={STEPS}", "checkpoint.save_contents=[model]"]
    if device == "cuda":
        overrides += CUDA_OVERRIDES
        # run_sft.sh turns optimizer offload on for 3B on one GPU (80 GB cards); one H200 holds the states
        # and the activations (about 56 + 20 GiB). OPTIMIZER_OFFLOAD=True in the environment overrides this.
        env.setdefault("OPTIMIZER_OFFLOAD", "False")
    result = common.launch(
        "sft", ["bash", str(REPO_ROOT / "examples" / "sft" / "run_sft.sh"), *overrides], env=env, work=work, metrics=metrics
    )
    steps = step_table(result.lines.get(str(metrics), []))
    problems = []
    if result.returncode != 0:
        problems.append(f"run_sft.sh exited {result.returncode} (log {result.log})")
    if [s["step"] for s in steps] != list(range(1, STEPS + 1)):
        problems.append(f"logged steps {[s['step'] for s in steps]}, expected 1..{STEPS}")
    bad = [s["step"] for s in steps if not (isinstance(s["loss"], (int, float)) and math.isfinite(s["loss"]))]
    if bad:
        problems.append(f"no finite loss at steps {bad}")
    report = {
        "what": "sft_steps",
        "ok": not problems,
        "problems": problems,
        "date": dt.date.today().isoformat(),
        "device": figures.device_name(device),
        "model": load.model,
        "settings": {
            "rows_per_step": load.sft_batch,
            "image_tokens": load.image_tokens,
            "launcher": "torchrun, 1 process",
            "optimizer_offload": env.get("OPTIMIZER_OFFLOAD", "auto"),
        },
        "steps": steps,
        "time_to_first_step_s": steps[0]["arrived_s"] if steps else None,
        "wall_s": round(result.wall_s, 1),
        "peak_gpu_used_gib": None if result.peak_gpu_used_gib is None else round(result.peak_gpu_used_gib, 2),
        "peak_host_pss_gib": round(result.peak_host_pss_gib, 2),
        "peak_host_rss_gib": round(result.peak_host_rss_gib, 2),
        "versions": figures.versions(),
    }
    shutil.rmtree(checkpoints, ignore_errors=True)
    return common.emit(report, args.json, failed=[result], metrics={"sft": metrics})


if __name__ == "__main__":
    sys.exit(main())
